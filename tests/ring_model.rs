//! Property test: random operation sequences on a small ring, one producer and several
//! consumers in this process, checked step by step against a model: a `VecDeque<u8>`
//! per consumer and the free-space rule of spec/ring-format.md section 5
//! (free = D - 1 - largest backlog; D - 1 with no consumer).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use daqflow::ring::{self, Consumer, CreateOptions, Producer};
use proptest::prelude::*;

const MAX_CONSUMERS: u32 = 3;
/// create(4096, 3): object 8192 bytes, header 80 + 16 * 4 = 144, D = 8048.
const D: u64 = 8192 - 144;
const CAP: u64 = D - 1;

struct RingName(String);

impl RingName {
    fn new() -> RingName {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t-model-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        RingName(name)
    }
}

impl Drop for RingName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    Get { c: usize, min: u64, max: u64 },
    Peek { c: usize, max: u64 },
    Skip { c: usize, n: u64 },
    Borrow { c: usize, min: u64, max: u64, keep: u64 },
    Reserve { len: u64, commit: u64 },
    Attach,
    Detach(usize),
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..64u64,
        4 => 64..3000u64,
        2 => 3000..=CAP,
        2 => (CAP - 16)..=(CAP + 2), // near capacity, and just past it
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..4usize;
    prop_oneof![
        6 => size().prop_map(Op::Put),
        4 => (c.clone(), size(), size()).prop_map(|(c, a, b)| Op::Get { c, min: a.min(b), max: a.max(b) }),
        1 => (c.clone(), size()).prop_map(|(c, max)| Op::Peek { c, max }),
        2 => (c.clone(), size()).prop_map(|(c, n)| Op::Skip { c, n }),
        2 => (c.clone(), size(), size(), 0..=100u64)
            .prop_map(|(c, a, b, keep)| Op::Borrow { c, min: a.min(b), max: a.max(b), keep }),
        2 => (size(), 0..=100u64).prop_map(|(len, commit)| Op::Reserve { len, commit }),
        1 => Just(Op::Attach),
        1 => c.prop_map(Op::Detach),
    ]
}

struct Model {
    name: RingName,
    producer: Producer,
    /// Attached consumers, each with the bytes it has yet to read.
    consumers: Vec<(Consumer, VecDeque<u8>)>,
    next_byte: u64,
}

impl Model {
    fn free(&self) -> u64 {
        CAP - self.consumers.iter().map(|(_, q)| q.len() as u64).max().unwrap_or(0)
    }

    fn bytes(&mut self, n: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.next_byte += 1;
                (self.next_byte.wrapping_mul(0x9E37_79B9) >> 7) as u8
            })
            .collect()
    }

    fn push(&mut self, data: &[u8]) {
        for (_, q) in &mut self.consumers {
            q.extend(data.iter().copied());
        }
    }

    fn check(&self, step: &str) -> Result<(), TestCaseError> {
        let u = ring::usage(&self.name.0).map_err(|e| TestCaseError::fail(format!("usage: {e}")))?;
        let me = std::process::id() as i32;
        let backlogs: Vec<u64> = self.consumers.iter().map(|(_, q)| q.len() as u64).collect();
        prop_assert_eq!(u.data_bytes, D, "{}", step);
        prop_assert_eq!(u.max_consumers, MAX_CONSUMERS, "{}", step);
        prop_assert_eq!(u.producer_pid, me, "{}", step);
        prop_assert_eq!(u.put_space, self.free(), "put_space after {}", step);
        prop_assert_eq!(u.max_get, backlogs.iter().copied().max().unwrap_or(0), "max_get after {}", step);
        prop_assert_eq!(u.min_get, backlogs.iter().copied().min().unwrap_or(0), "min_get after {}", step);
        let mut expect: Vec<(u32, i32, u64)> =
            self.consumers.iter().map(|(c, q)| (c.slot(), me, q.len() as u64)).collect();
        expect.sort();
        let got: Vec<(u32, i32, u64)> = u.consumers.iter().map(|c| (c.slot, c.pid, c.backlog)).collect();
        prop_assert_eq!(got, expect, "consumers (slot order) after {}", step);
        prop_assert_eq!(self.producer.available_space().unwrap(), self.free(), "available_space after {}", step);
        for (c, q) in &self.consumers {
            prop_assert_eq!(c.available().unwrap(), q.len() as u64, "available of slot {} after {}", c.slot(), step);
        }
        Ok(())
    }
}

fn errno<T>(r: daqflow::Result<T>) -> Option<i32> {
    r.err().map(|e| e.errno())
}

fn run(prefill: u64, n_consumers: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let name = RingName::new();
    ring::create(&name.0, CreateOptions { data_bytes: 4096, max_consumers: MAX_CONSUMERS, ..Default::default() })
        .unwrap();
    let mut producer = Producer::attach(&name.0).unwrap();
    // Start the pointers anywhere: with no consumer the producer overwrites freely.
    let mut left = prefill;
    while left > 0 {
        let n = left.min(CAP);
        producer.put(&vec![0u8; n as usize], Some(Duration::ZERO)).unwrap();
        left -= n;
    }
    let consumers = (0..n_consumers).map(|_| (Consumer::attach(&name.0).unwrap(), VecDeque::new())).collect();
    let mut m = Model { name, producer, consumers, next_byte: 0 };
    m.check("start")?;
    let zero = Some(Duration::ZERO);
    for (i, op) in ops.into_iter().enumerate() {
        let step = format!("step {i}: {op:?}");
        match op {
            Op::Put(n) => {
                let data = m.bytes(n);
                let r = m.producer.put(&data, zero);
                if n > CAP {
                    prop_assert_eq!(errno(r), Some(libc::EMSGSIZE), "{}", step);
                } else if n > m.free() && !m.consumers.is_empty() {
                    prop_assert_eq!(errno(r), Some(libc::ETIMEDOUT), "{}", step);
                } else {
                    prop_assert!(r.is_ok(), "{}: {:?}", step, r.err());
                    m.push(&data);
                }
            }
            Op::Get { c, min, max } => {
                if m.consumers.is_empty() {
                    continue;
                }
                let k = c % m.consumers.len();
                let (cons, q) = &mut m.consumers[k];
                let mut buf = vec![0u8; max as usize];
                let r = cons.get(&mut buf, min, zero);
                if min > CAP {
                    prop_assert_eq!(errno(r), Some(libc::EMSGSIZE), "{}", step);
                } else if (q.len() as u64) < min {
                    prop_assert_eq!(errno(r), Some(libc::ETIMEDOUT), "{}", step);
                } else {
                    let n = r.map_err(|e| TestCaseError::fail(format!("{step}: {e}")))?;
                    prop_assert_eq!(n as u64, (q.len() as u64).min(max), "{}", step);
                    let want: Vec<u8> = q.drain(..n).collect();
                    prop_assert!(buf[..n] == want[..], "{}: wrong bytes", step);
                }
            }
            Op::Peek { c, max } => {
                if m.consumers.is_empty() {
                    continue;
                }
                let k = c % m.consumers.len();
                let (cons, q) = &mut m.consumers[k];
                let mut buf = vec![0u8; max as usize];
                let n = cons.peek(&mut buf).unwrap();
                prop_assert_eq!(n as u64, (q.len() as u64).min(max), "{}", step);
                let want: Vec<u8> = q.iter().take(n).copied().collect();
                prop_assert!(buf[..n] == want[..], "{}: wrong bytes", step);
            }
            Op::Skip { c, n } => {
                if m.consumers.is_empty() {
                    continue;
                }
                let k = c % m.consumers.len();
                let (cons, q) = &mut m.consumers[k];
                let r = cons.skip(n);
                if n > q.len() as u64 {
                    prop_assert_eq!(errno(r), Some(libc::ERANGE), "{}", step);
                } else {
                    prop_assert!(r.is_ok(), "{}", step);
                    q.drain(..n as usize);
                }
            }
            Op::Borrow { c, min, max, keep } => {
                if m.consumers.is_empty() {
                    continue;
                }
                let k = c % m.consumers.len();
                let (cons, q) = &mut m.consumers[k];
                let r = cons.borrow(min, max, zero);
                if min > CAP {
                    prop_assert_eq!(errno(r), Some(libc::EMSGSIZE), "{}", step);
                } else if (q.len() as u64) < min {
                    prop_assert_eq!(errno(r), Some(libc::ETIMEDOUT), "{}", step);
                } else {
                    let spans = r.map_err(|e| TestCaseError::fail(format!("{step}: {e}")))?;
                    let n = spans[0].len + spans[1].len;
                    prop_assert_eq!(n as u64, (q.len() as u64).min(max), "{}", step);
                    prop_assert!(spans[1].len == 0 || spans[0].len > 0, "{}: empty first span", step);
                    let mut got = Vec::with_capacity(n);
                    for s in spans {
                        let mut v = vec![0u8; s.len];
                        // SAFETY: a span of the borrow just made, not yet released: ring
                        // memory nobody writes meanwhile; `v` is a fresh local of its length.
                        unsafe { std::ptr::copy_nonoverlapping(s.ptr, v.as_mut_ptr(), s.len) };
                        got.extend(v);
                    }
                    let want: Vec<u8> = q.iter().take(n).copied().collect();
                    prop_assert!(got == want, "{}: wrong bytes", step);
                    let release = n as u64 * keep / 100;
                    cons.release(release).unwrap();
                    q.drain(..release as usize);
                }
            }
            Op::Reserve { len, commit } => {
                let r = m.producer.reserve(len, zero);
                if len > CAP {
                    prop_assert_eq!(errno(r), Some(libc::EMSGSIZE), "{}", step);
                } else if len > m.free() && !m.consumers.is_empty() {
                    prop_assert_eq!(errno(r), Some(libc::ETIMEDOUT), "{}", step);
                } else {
                    let spans = r.map_err(|e| TestCaseError::fail(format!("{step}: {e}")))?;
                    prop_assert_eq!((spans[0].len + spans[1].len) as u64, len, "{}", step);
                    let n = len * commit / 100;
                    let data = m.bytes(n);
                    let mut done = 0;
                    for s in spans {
                        let k = s.len.min(data.len() - done);
                        // SAFETY: `k` bytes at most of a span of the reservation just made,
                        // ours alone until the commit; the source is a local vector.
                        unsafe { std::ptr::copy_nonoverlapping(data[done..].as_ptr(), s.ptr, k) };
                        done += k;
                    }
                    m.producer.commit(n).unwrap();
                    m.push(&data);
                }
            }
            Op::Attach => {
                let r = Consumer::attach(&m.name.0);
                if m.consumers.len() as u32 == MAX_CONSUMERS {
                    prop_assert_eq!(errno(r), Some(libc::ENOMEM), "{}", step);
                } else {
                    let c = r.unwrap();
                    prop_assert_eq!(c.available().unwrap(), 0, "{}: a new consumer starts empty", step);
                    m.consumers.push((c, VecDeque::new()));
                }
            }
            Op::Detach(c) => {
                if m.consumers.is_empty() {
                    continue;
                }
                let k = c % m.consumers.len();
                let (cons, _) = m.consumers.remove(k);
                cons.detach().unwrap();
            }
        }
        m.check(&step)?;
    }
    // Drain everything that is left and compare.
    for (cons, q) in &mut m.consumers {
        let mut buf = vec![0u8; CAP as usize];
        let n = cons.get(&mut buf, 0, Some(Duration::ZERO)).unwrap();
        prop_assert_eq!(n, q.len());
        prop_assert!(buf[..n] == q.make_contiguous()[..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_model(prefill in 0..2 * D, n_consumers in 0..=MAX_CONSUMERS as usize,
                          ops in proptest::collection::vec(op(), 1..80)) {
        run(prefill, n_consumers, ops)?;
    }
}

/// A fixed sequence that exercises the wrap at every offset near the top.
#[test]
fn every_offset_near_the_top() {
    for start in (D - 40)..=D {
        let ops = vec![
            Op::Put(39),
            Op::Put(2),
            Op::Get { c: 0, min: 41, max: 41 },
            Op::Put(CAP),
            Op::Put(1),
            Op::Get { c: 0, min: 1, max: CAP },
            Op::Reserve { len: 77, commit: 100 },
            Op::Borrow { c: 0, min: 1, max: 1000, keep: 100 },
        ];
        run(start, 1, ops).unwrap();
    }
}
