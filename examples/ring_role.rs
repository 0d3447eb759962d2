//! One side of a multi-process ring test (tests/ring_processes.rs runs these and kills
//! them at random points). Records are self-checking: [u32 size][u32 generation]
//! [u64 sequence][pattern], so a consumer detects loss, duplication, reordering and
//! torn records without talking to anyone.
//!
//!   ring_role produce RING GENERATION COUNT   COUNT records, then an end record
//!   ring_role consume RING ENDS               reads until ENDS end records, checks all
//!   ring_role churn RING                      attaches and detaches consumers forever
//!   ring_role join-and-die RING SLOT          a legacy joiner: lock, pid 0, then hang

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Duration;

use daqflow::ring::{Consumer, Producer};

const STALL: Option<Duration> = Some(Duration::from_secs(20));
const END: u64 = u64::MAX;

fn size_of(generation: u32, seq: u64) -> usize {
    16 + ((seq.wrapping_mul(2654435761) ^ generation as u64) % 2033) as usize
}

fn fill(out: &mut Vec<u8>, generation: u32, seq: u64, size: usize) {
    out.clear();
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((16..size).map(|i| (seq as u8) ^ (i as u8) ^ (generation as u8)));
}

fn produce(ring: &str, generation: u32, count: u64) -> Result<String, String> {
    let mut p = Producer::attach(ring).map_err(|e| e.to_string())?;
    let mut rec = Vec::new();
    for seq in 0..count {
        fill(&mut rec, generation, seq, size_of(generation, seq));
        p.put(&rec, STALL).map_err(|e| format!("put {seq}: {e}"))?;
    }
    fill(&mut rec, generation, END, 16);
    p.put(&rec, STALL).map_err(|e| e.to_string())?;
    Ok(format!("produced {count}"))
}

fn consume(ring: &str, ends: u32) -> Result<String, String> {
    let mut c = Consumer::attach(ring).map_err(|e| e.to_string())?;
    println!("attached {}", c.slot());
    let (mut seen_ends, mut records) = (0, 0u64);
    let mut current: Option<(u32, u64)> = None; // (generation, next sequence)
    let mut buf = vec![0u8; 4096];
    let mut expect = Vec::new();
    while seen_ends < ends {
        c.get(&mut buf[..16], 16, STALL).map_err(|e| format!("after {records} records: {e}"))?;
        let size = u32::from_le_bytes(buf[0..4].try_into().unwrap_or_default()) as usize;
        let generation = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
        if !(16..=buf.len()).contains(&size) {
            return Err(format!("record of size {size} after {records} records"));
        }
        c.get(&mut buf[16..size], (size - 16) as u64, STALL).map_err(|e| e.to_string())?;
        let want = if seq == END { 16 } else { size_of(generation, seq) };
        fill(&mut expect, generation, seq, want);
        if buf[..size] != expect[..] {
            return Err(format!("record gen {generation} seq {seq} is torn or wrong"));
        }
        if seq == END {
            seen_ends += 1;
            current = None;
        } else {
            // Within one generation (one producer) no gaps; a consumer may join, or a
            // new producer take over, at any sequence number.
            if let Some((g, next)) = current {
                if g == generation && seq != next {
                    return Err(format!("gen {generation}: got seq {seq}, expected {next}"));
                }
            }
            current = Some((generation, seq + 1));
        }
        records += 1;
    }
    Ok(format!("ok {records}"))
}

fn churn(ring: &str) -> Result<String, String> {
    let mut buf = [0u8; 64];
    loop {
        if let Ok(mut c) = Consumer::attach(ring) {
            let _ = c.get(&mut buf, 0, Some(Duration::ZERO));
        }
    }
}

/// What a legacy consumer killed in the middle of joining leaves: pid 0 in a slot,
/// written under a classic fcntl lock on the header.
fn join_and_die(ring: &str, slot: u64) -> Result<String, String> {
    let file = OpenOptions::new().read(true).write(true).open(format!("/dev/shm/{ring}")).map_err(|e| e.to_string())?;
    let mut n = [0u8; 8];
    file.read_exact_at(&mut n, 32).map_err(|e| e.to_string())?;
    let header = 80 + 16 * (u64::from_le_bytes(n) + 1);
    // SAFETY: flock is plain data.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    lock.l_len = header as libc::off_t;
    // SAFETY: valid descriptor and flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &lock) } != 0 {
        return Err("lock failed".into());
    }
    file.write_all_at(&0i32.to_le_bytes(), 96 + 16 * slot + 8).map_err(|e| e.to_string())?;
    println!("joining");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn main() -> ExitCode {
    // The ring core alone opens only local names and tells no ring master: the client
    // layer adds both, as every NSCLDAQ program expects.
    daqflow::client::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["produce", ring, generation, count] => match (generation.parse(), count.parse()) {
            (Ok(g), Ok(n)) => produce(ring, g, n),
            _ => Err("bad numbers".into()),
        },
        ["consume", ring, ends] => ends.parse().map_err(|_| "bad count".to_string()).and_then(|n| consume(ring, n)),
        ["churn", ring] => churn(ring),
        ["join-and-die", ring, slot] => {
            slot.parse().map_err(|_| "bad slot".to_string()).and_then(|s| join_and_die(ring, s))
        }
        _ => Err("usage: see the source".into()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ring_role: {e}");
            ExitCode::FAILURE
        }
    }
}
