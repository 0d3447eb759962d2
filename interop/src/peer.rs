//! The peer programs' side: their arguments, the produce and consume loops (the same for
//! FRIB's client and daqflow's, so the two differ only in the library under them), and
//! the lines they report on stdout.
//!
//! ```text
//! PEER produce RING RECORD TOTAL [--consumers N] [--hold]
//! PEER consume RING RECORD TOTAL [--hold]
//! ```
//! Output: `attached`, then `done BYTES` once TOTAL bytes went through; with `--hold` the
//! peer then stays attached until its stdin closes. Any failure: a message on stderr and
//! exit status 1.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// How long any single transfer or wait may take before the peer gives up.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Produce,
    Consume,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub op: Op,
    pub ring: String,
    pub record: usize,
    pub total: u64,
    /// A producer waits until this many consumers are attached before its first put.
    pub consumers: usize,
    pub hold: bool,
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let usage = || "usage: produce|consume RING RECORD TOTAL [--consumers N] [--hold]".to_string();
    let [op, ring, record, total, rest @ ..] = args else { return Err(usage()) };
    let op = match op.as_str() {
        "produce" => Op::Produce,
        "consume" => Op::Consume,
        _ => return Err(usage()),
    };
    let number = |s: &str| s.parse::<u64>().map_err(|_| format!("{s:?} is not a number"));
    let record = number(record)? as usize;
    if record == 0 {
        return Err("the record size must be positive".into());
    }
    let mut parsed = Args { op, ring: ring.clone(), record, total: number(total)?, consumers: 0, hold: false };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--hold" => parsed.hold = true,
            "--consumers" => parsed.consumers = number(rest.next().ok_or_else(usage)?)? as usize,
            _ => return Err(usage()),
        }
    }
    Ok(parsed)
}

/// One line on stdout, flushed at once: the test reads it while the peer runs.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Blocks until stdin is closed (the test's signal to detach).
pub fn hold() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Waits until `count()` reaches `n`.
pub fn wait_for_consumers(n: usize, mut count: impl FnMut() -> Result<usize, String>) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let have = count()?;
        if have >= n {
            return Ok(());
        }
        if start.elapsed() > PATIENCE {
            return Err(format!("only {have} of {n} consumers attached after {PATIENCE:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Puts `total` bytes of the stream in records of `record` bytes (the last one shorter).
pub fn produce(record: usize, total: u64, mut put: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
    let mut buf = vec![0u8; record];
    let mut at = 0u64;
    while at < total {
        let n = record.min((total - at) as usize);
        crate::fill(&mut buf[..n], at);
        put(&buf[..n]).map_err(|e| format!("put of {n} bytes at stream offset {at}: {e}"))?;
        at += n as u64;
    }
    Ok(())
}

/// Reads `total` bytes in records of `record` bytes and checks every byte. `get` fills
/// a prefix of its buffer and says how much.
pub fn consume(
    record: usize,
    total: u64,
    mut get: impl FnMut(&mut [u8]) -> Result<usize, String>,
) -> Result<(), String> {
    let mut buf = vec![0u8; record];
    let mut at = 0u64;
    while at < total {
        let want = record.min((total - at) as usize);
        let n = get(&mut buf[..want]).map_err(|e| format!("get at stream offset {at}: {e}"))?;
        if n == 0 || n > want {
            return Err(format!("get at stream offset {at} returned {n} bytes for {want}"));
        }
        if let Some(bad) = crate::first_mismatch(&buf[..n], at) {
            return Err(format!(
                "byte {bad} of the stream is {:#04x}, expected {:#04x}",
                buf[(bad - at) as usize],
                crate::stream_byte(bad)
            ));
        }
        at += n as u64;
    }
    Ok(())
}

/// Runs a peer: parses the arguments, then `run`, reporting failure as status 1.
pub fn main(run: impl FnOnce(&Args) -> Result<(), String>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|a| run(&a));
    if let Err(e) = result {
        eprintln!("{}: {e}", std::env::args().next().unwrap_or_default());
        std::process::exit(1);
    }
}

/// What a peer does once attached: transfer, report, hold if asked.
pub fn transfer(args: &Args, step: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    say("attached");
    step()?;
    say(&format!("done {}", args.total));
    if args.hold {
        hold();
    }
    Ok(())
}
