//! One process of a remote-ring test or benchmark (tests/remote_*.rs and
//! benches/remote.rs run these inside network namespaces). Items are self-checking ring
//! items: [u32 size][u32 type][u64 sequence][pattern], every eighth written big-endian
//! (the byte-swap rule), so a consumer detects torn, reordered or foreign items alone.
//!
//!   remote_role create RING
//!   remote_role produce RING SIZE COUNT CONSUMERS   waits for CONSUMERS consumers, puts
//!                                                   COUNT items (SIZE 0: 24 B..70 KiB), then an end item
//!                                                   (earlier once the file $DF_STOP exists; $DF_PAUSE_US
//!                                                   microseconds between items)
//!   remote_role consume URL [gaps [polling]]        reads to the end item, checks every byte
//!                                                   (polling: waits as CRingItem does, asking
//!                                                   how much data is there every 3 ms)
//!   remote_role producer-pid RING                   prints the ring's producer pid
//!   remote_role tcp-send ADDR:PORT SIZE COUNT       the same items down a plain socket
//!   remote_role tcp-recv PORT                       reads them, checks sizes, prints the rate
//!   remote_role attach URL                          attaches a consumer, prints its slot, detaches
//!   remote_role usage URL                           prints the usage of a ring (URL or name) or the errno
//!   remote_role silent-dns locate HOST MS           holds UDP 127.0.0.1:53 without answering (a
//!   remote_role silent-dns attach URL               dead name server), then locates HOST's ring
//!                                                   master within MS ms, or attaches a consumer to
//!                                                   URL; prints errno and seconds

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use daqflow::remote::framing::item_size;
use daqflow::ring::{self, Consumer, CreateOptions, Producer};

const PHYSICS: u32 = 30;
const END: u32 = 2;
/// A consumer that gets nothing for this long reports a stall.
const STALL: Duration = Duration::from_secs(90);

fn size_of(seq: u64) -> usize {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    24 + (x % 70_000) as usize
}

fn pattern(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31).wrapping_add(i as u8)
}

fn encode(out: &mut Vec<u8>, kind: u32, seq: u64, size: usize) {
    out.clear();
    if seq % 8 == 3 {
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
    } else {
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    }
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((16..size).map(|i| pattern(seq, i)));
}

/// The items of a run. Fixed-size items are made once per pattern (the pattern and byte
/// order repeat every 256 items) and only their sequence number is rewritten, so a
/// producer spends its time moving bytes, not making them.
struct Items {
    size: usize,
    cache: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl Items {
    fn new(size: usize) -> Items {
        let cache = if size == 0 {
            Vec::new()
        } else {
            (0..256u64)
                .map(|seq| {
                    let mut v = Vec::new();
                    encode(&mut v, PHYSICS, seq, size);
                    v
                })
                .collect()
        };
        Items { size, cache, scratch: Vec::new() }
    }

    fn get(&mut self, seq: u64) -> &[u8] {
        if self.size == 0 {
            encode(&mut self.scratch, PHYSICS, seq, size_of(seq));
            return &self.scratch;
        }
        let item = &mut self.cache[(seq % 256) as usize];
        item[8..16].copy_from_slice(&seq.to_le_bytes());
        item
    }
}

fn produce(ring: &str, size: usize, count: u64, consumers: usize) -> Result<String, String> {
    let mut producer = Producer::attach(ring).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let usage = ring::usage(ring).map_err(|e| e.to_string())?;
        if usage.consumers.iter().filter(|c| c.pid > 0).count() >= consumers {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {} of {consumers} consumers attached", usage.consumers.len()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let mut items = Items::new(size);
    let mut item = Vec::new();
    let mut bytes = 0u64;
    let stop = std::env::var_os("DF_STOP").map(std::path::PathBuf::from);
    let pause = std::env::var("DF_PAUSE_US").ok().and_then(|p| p.parse().ok()).map(Duration::from_micros);
    let mut count = count;
    for seq in 0..count {
        if seq % 64 == 0 && stop.as_ref().is_some_and(|f| f.exists()) {
            count = seq;
            break;
        }
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
        let item = items.get(seq);
        producer.put(item, None).map_err(|e| format!("put {seq}: {e}"))?;
        bytes += item.len() as u64;
    }
    encode(&mut item, END, count, 16);
    producer.put(&item, None).map_err(|e| e.to_string())?;
    Ok(format!("produced {count} items {bytes} bytes {:.3} s", start.elapsed().as_secs_f64()))
}

/// Every byte of an item's body against `pattern`, 256 bytes at a time against a slice
/// of a ramp (the pattern is a byte counter), so checking costs about a memcmp.
fn check(item: &[u8], seq: u64) -> Result<(), String> {
    static RAMP: [u8; 512] = {
        let mut r = [0u8; 512];
        let mut i = 0;
        while i < 512 {
            r[i] = i as u8;
            i += 1;
        }
        r
    };
    let mut i = 16;
    while i < item.len() {
        let n = (item.len() - i).min(256);
        let from = pattern(seq, i) as usize;
        if item[i..i + n] != RAMP[from..from + n] {
            let at = (i..i + n).find(|&j| item[j] != pattern(seq, j)).unwrap_or(i);
            return Err(format!("item {seq} of {} bytes is torn at byte {at}", item.len()));
        }
        i += n;
    }
    Ok(())
}

/// Waits for `n` bytes as NSCLDAQ's CRingItem does: asking how many are there every few
/// milliseconds, never waiting in the ring.
fn poll_for(consumer: &Consumer, n: u64) -> daqflow::Result<()> {
    let since = Instant::now();
    while consumer.available()? < n {
        if since.elapsed() > STALL {
            return Err(daqflow::Error::new(libc::ETIMEDOUT, "no data (polling)"));
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    Ok(())
}

fn consume(url: &str, gaps_allowed: bool, polling: bool) -> Result<String, String> {
    let mut consumer = Consumer::attach(url).map_err(|e| format!("attach {url}: {e}"))?;
    println!("attached");
    let _ = std::io::stdout().flush();
    let mut item = vec![0u8; 1 << 20];
    let (mut items, mut gaps, mut bytes) = (0u64, 0u64, 0u64);
    let mut next: Option<u64> = None;
    // From the first item on: the rate of the stream, not of our start-up.
    let mut start = None;
    loop {
        if polling {
            poll_for(&consumer, 8).map_err(|e| format!("after {items} items: {e}"))?;
        }
        consumer.get(&mut item[..8], 8, Some(STALL)).map_err(|e| format!("after {items} items: {e}"))?;
        start.get_or_insert_with(Instant::now);
        let size = item_size(item[..8].try_into().map_err(|_| "short header")?) as usize;
        let kind = u32::from_le_bytes(item[4..8].try_into().map_err(|_| "short header")?);
        let kind = if kind & 0xffff == 0 { kind.swap_bytes() } else { kind };
        if !(16..=item.len()).contains(&size) || !(kind == PHYSICS || kind == END) {
            return Err(format!("after {items} items: a header that is no item of ours (size {size}, type {kind:#x})"));
        }
        if polling {
            poll_for(&consumer, (size - 8) as u64).map_err(|e| format!("after {items} items: {e}"))?;
        }
        consumer
            .get(&mut item[8..size], (size - 8) as u64, Some(STALL))
            .map_err(|e| format!("after {items} items: {e}"))?;
        let seq = u64::from_le_bytes(item[8..16].try_into().map_err(|_| "short item")?);
        if kind == END {
            break;
        }
        check(&item[..size], seq)?;
        if let Some(want) = next {
            if seq < want || (seq > want && !gaps_allowed) {
                return Err(format!("item {seq} arrived where {want} was due"));
            }
            gaps += u64::from(seq > want);
        }
        next = Some(seq + 1);
        items += 1;
        bytes += size as u64;
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(format!("items {items} gaps {gaps} bytes {bytes} secs {secs:.3} last {}", next.map_or(-1, |n| n as i64 - 1)))
}

fn tcp_send(addr: &str, size: usize, count: u64) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut items = Items::new(size);
    for seq in 0..count {
        stream.write_all(items.get(seq)).map_err(|e| e.to_string())?;
    }
    Ok("sent".into())
}

fn usage(name: &str) -> String {
    let found = match daqflow::remote::url::parse(name) {
        Ok(Some(url)) => daqflow::remote::usage(&url),
        Ok(None) => ring::usage(name),
        Err(e) => Err(e),
    };
    match found {
        Ok(u) => format!(
            "data {} put {} max {} producer {} consumers {}",
            u.data_bytes,
            u.put_space,
            u.max_consumers,
            u.producer_pid,
            u.consumers.iter().map(|c| format!("{}:{}", c.pid, c.backlog)).collect::<Vec<_>>().join(",")
        ),
        Err(e) => format!("errno {}", e.errno()),
    }
}

fn silent_dns(what: &[&str]) -> Result<String, String> {
    let _name_server = std::net::UdpSocket::bind("127.0.0.1:53").map_err(|e| format!("bind 127.0.0.1:53: {e}"))?;
    let start = Instant::now();
    let outcome = match what {
        ["locate", host, ms] => {
            let ms = ms.parse().map_err(|_| format!("{ms:?} is not a number"))?;
            daqflow::ringmaster::Client::locate(host, Some(30000), Duration::from_millis(ms)).map(drop)
        }
        ["attach", url] => Consumer::attach(url).map(drop),
        _ => return Err("silent-dns locate HOST MS | silent-dns attach URL".into()),
    };
    let errno = outcome.err().map_or(0, |e| e.errno());
    Ok(format!("errno {errno} secs {:.3}", start.elapsed().as_secs_f64()))
}

/// Reads the stream whole items at a time and checks each, as a ring consumer does.
fn tcp_recv(port: u16) -> Result<String, String> {
    let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| e.to_string())?;
    println!("listening");
    let _ = std::io::stdout().flush();
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut item = vec![0u8; 1 << 20];
    let (mut bytes, mut items) = (0u64, 0u64);
    let mut start = None;
    loop {
        match stream.read_exact(&mut item[..8]) {
            Ok(()) => {
                start.get_or_insert_with(Instant::now);
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        }
        let size = item_size(item[..8].try_into().map_err(|_| "short header")?) as usize;
        stream.read_exact(&mut item[8..size]).map_err(|e| e.to_string())?;
        let seq = u64::from_le_bytes(item[8..16].try_into().map_err(|_| "short item")?);
        check(&item[..size], seq)?;
        bytes += size as u64;
        items += 1;
    }
    Ok(format!(
        "items {items} gaps 0 bytes {bytes} secs {:.3}",
        start.map_or(0.0, |s: Instant| s.elapsed().as_secs_f64())
    ))
}

fn report(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("remote_role: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // The ring core alone opens only local names and tells no ring master: the client
    // layer adds both, as every NSCLDAQ program expects.
    daqflow::client::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let num = |s: &str| s.parse::<u64>().map_err(|_| format!("{s:?} is not a number"));
    let result = match args.as_slice() {
        ["create", ring] => {
            ring::create(ring, CreateOptions::default()).map(|()| "created".to_string()).map_err(|e| e.to_string())
        }
        ["produce", ring, size, count, consumers] => num(size).and_then(|s| {
            num(count).and_then(|c| num(consumers).and_then(|n| produce(ring, s as usize, c, n as usize)))
        }),
        ["consume", url] => consume(url, false, false),
        ["consume", url, "gaps"] => consume(url, true, false),
        ["consume", url, "gaps", "polling"] => consume(url, true, true),
        ["producer-pid", ring] => ring::usage(ring).map(|u| u.producer_pid.to_string()).map_err(|e| e.to_string()),
        ["tcp-send", addr, size, count] => {
            num(size).and_then(|s| num(count).and_then(|c| tcp_send(addr, s as usize, c)))
        }
        ["tcp-recv", port] => num(port).and_then(|p| tcp_recv(p as u16)),
        ["usage", name] => Ok(usage(name)),
        ["attach", url] => Consumer::attach(url)
            .and_then(|c| {
                let slot = c.slot();
                c.detach().map(|()| format!("slot {slot}"))
            })
            .map_err(|e| e.to_string()),
        ["silent-dns", what @ ..] => silent_dns(what),
        _ => Err("unknown role (see the source)".into()),
    };
    report(result)
}
