//! What the ring benchmark's child processes share with the FRIB reference's helper
//! (interop/src/bin/frib-bench.rs, which includes this file), so that both move and check
//! exactly the same stream and report alike: record n carries n in its first 8 bytes and
//! n ^ TAIL_MAGIC in its last 8; every child reports its context switches.

/// Mixed into the trailing word of each record, so a record shifted by a whole record
/// size or torn between two records is caught too.
pub const TAIL_MAGIC: u64 = 0x5a5a_c0de_f00d_a5a5;

/// Writes record `seq`'s check words: the sequence number first, `seq ^ TAIL_MAGIC` last.
pub fn stamp(record: &mut [u8], seq: u64) {
    let n = record.len();
    record[..8].copy_from_slice(&seq.to_le_bytes());
    record[n - 8..].copy_from_slice(&(seq ^ TAIL_MAGIC).to_le_bytes());
}

/// Checks the stream a consumer receives in arbitrary chunks (a get returns whatever is
/// there, so check words may straddle two gets).
pub struct Checker {
    rec: u64,
    /// Stream bytes seen so far.
    pos: u64,
    word: [u8; 8],
    pub bad: u64,
}

impl Checker {
    pub fn new(rec: u64) -> Checker {
        Checker { rec, pos: 0, word: [0; 8], bad: 0 }
    }

    pub fn feed(&mut self, data: &[u8]) {
        let start = self.pos;
        let end = start + data.len() as u64;
        let mut idx = start / self.rec;
        while idx * self.rec < end {
            let base = idx * self.rec;
            for (off, expect) in [(0, idx), (self.rec - 8, idx ^ TAIL_MAGIC)] {
                let ws = base + off;
                let we = ws + 8;
                if we <= start || ws >= end {
                    continue;
                }
                if ws >= start && we <= end {
                    let at = (ws - start) as usize;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&data[at..at + 8]);
                    self.bad += (u64::from_le_bytes(w) != expect) as u64;
                } else {
                    // Straddles a chunk boundary: assemble it across calls.
                    let a = ws.max(start);
                    let b = we.min(end);
                    self.word[(a - ws) as usize..(b - ws) as usize]
                        .copy_from_slice(&data[(a - start) as usize..(b - start) as usize]);
                    if b == we {
                        self.bad += (u64::from_le_bytes(self.word) != expect) as u64;
                    }
                }
            }
            idx += 1;
        }
        self.pos = end;
    }
}

/// This process's voluntary and involuntary context switches so far (a voluntary one is a
/// sleep: a futex wait, a poller's nanosleep; an involuntary one a preemption), and the CPU
/// time it used, user and system, in microseconds.
pub fn context_switches_and_cpu() -> (u64, u64, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer; RUSAGE_SELF always exists.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0, 0, 0);
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64, us(ru.ru_utime) + us(ru.ru_stime))
}

/// This process's CPU time so far, microseconds: taken where the timed work starts, so
/// that start-up and attaching do not count.
pub fn cpu_us() -> u64 {
    context_switches_and_cpu().2
}
