//! Producers and consumers in separate processes, killed with SIGKILL at random points:
//! nothing may hang, nothing may be lost, duplicated or torn, and a dead client's slot
//! must be freed within a second with no daemon running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{RingName, role_exe};
use daqflow::ring;

/// Children are killed when the test ends, pass or fail.
struct Proc(Child);

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let child = Command::new(role_exe())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ring_role (built as an example by cargo test)");
        Proc(child)
    }

    /// Waits for the first stdout line (the role says it is attached / joining).
    fn first_line(&mut self) -> String {
        let out = self.0.stdout.as_mut().expect("piped");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("read child");
        line
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits at most `limit`; a child still running then is a hang.
    fn finish(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait().expect("wait") {
                Some(status) => {
                    let mut err = String::new();
                    if let Some(mut e) = self.0.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return (status.success(), err);
                }
                None if Instant::now() > deadline => {
                    self.kill();
                    return (false, format!("still running after {limit:?}: a hang"));
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small xorshift generator seeded from the clock; the seed is printed so a failure
/// can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("DAQFLOW_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
                | 1
        });
        println!("DAQFLOW_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn wait_consumers(name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring::usage(name).expect("usage").consumers.len() < n {
        assert!(Instant::now() < deadline, "consumers did not attach");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Dead slots must disappear from usage (which frees them) within a second of death.
fn assert_no_dead_slots(name: &str, live: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let u = ring::usage(name).expect("usage");
        let stale: Vec<_> = u.consumers.iter().filter(|c| !live.contains(&(c.pid as u32))).collect();
        if stale.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "dead consumers still hold slots after 1 s: {stale:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn consumers_killed_at_random_points_never_stall_the_producer() {
    let mut rng = Rng::new();
    for round in 0..4 {
        let ring = RingName::created(&format!("kc{round}"), 65536, 8);
        let mut consumers: Vec<Proc> = (0..4).map(|_| Proc::start(&["consume", ring.s(), "1"])).collect();
        for c in &mut consumers {
            c.first_line();
        }
        let mut churners: Vec<Proc> = (0..2).map(|_| Proc::start(&["churn", ring.s()])).collect();
        wait_consumers(ring.s(), 4);
        // 20000 records (~20 MB) through a 64 KiB ring: any stuck slot stalls it.
        let producer = Proc::start(&["produce", ring.s(), "1", "20000"]);
        let victim = rng.below(4) as usize;
        std::thread::sleep(Duration::from_millis(rng.below(60)));
        consumers[victim].kill();
        for churner in &mut churners {
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            churner.kill();
        }
        let (ok, err) = producer.finish(Duration::from_secs(60));
        assert!(ok, "round {round}: producer failed: {err}");
        for (i, c) in consumers.into_iter().enumerate() {
            if i == victim {
                continue;
            }
            let (ok, err) = c.finish(Duration::from_secs(30));
            assert!(ok, "round {round}: consumer {i} failed: {err}");
        }
        assert_no_dead_slots(ring.s(), &[]);
    }
}

#[test]
fn a_consumer_killed_while_joining_is_freed_and_stalls_nobody() {
    let ring = RingName::created("join", 65536, 4);
    // Exactly what a legacy consumer killed mid-join leaves: pid 0 under the lock.
    let mut joiner = Proc::start(&["join-and-die", ring.s(), "0"]);
    assert_eq!(joiner.first_line().trim(), "joining");
    joiner.kill();
    let consumer = {
        let mut c = Proc::start(&["consume", ring.s(), "1"]);
        c.first_line();
        c
    };
    let producer = Proc::start(&["produce", ring.s(), "1", "5000"]);
    assert!(producer.finish(Duration::from_secs(30)).0, "producer stalled behind a dead joiner");
    assert!(consumer.finish(Duration::from_secs(30)).0);
    assert_no_dead_slots(ring.s(), &[]);
    let u = ring::usage(ring.s()).expect("usage");
    assert!(u.consumers.is_empty(), "slot 0 still claimed: {u:?}");
}

#[test]
fn a_consumer_killed_at_random_while_attaching_leaves_no_stuck_slot() {
    let mut rng = Rng::new();
    let ring = RingName::created("churn", 65536, 4);
    for _ in 0..30 {
        let mut churner = Proc::start(&["churn", ring.s()]);
        std::thread::sleep(Duration::from_micros(2000 + rng.below(20_000)));
        churner.kill();
        assert_no_dead_slots(ring.s(), &[]);
    }
    // Every slot is still usable.
    let clients: Vec<_> = (0..4).map(|_| ring::Consumer::attach(ring.s()).expect("attach after churn")).collect();
    assert_eq!(clients.len(), 4);
}

#[test]
fn a_producer_killed_at_random_is_replaced_and_consumers_see_only_whole_records() {
    let mut rng = Rng::new();
    for round in 0..3 {
        let ring = RingName::created(&format!("kp{round}"), 65536, 4);
        let consumers: Vec<Proc> = (0..2)
            .map(|_| {
                let mut c = Proc::start(&["consume", ring.s(), "1"]);
                c.first_line();
                c
            })
            .collect();
        let mut first = Proc::start(&["produce", ring.s(), "1", "100000000"]);
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        first.kill();
        // The dead producer's slot is taken over by the next producer's attach.
        let second = Proc::start(&["produce", ring.s(), "2", "3000"]);
        let (ok, err) = second.finish(Duration::from_secs(30));
        assert!(ok, "round {round}: replacement producer failed: {err}");
        for c in consumers {
            let (ok, err) = c.finish(Duration::from_secs(30));
            assert!(ok, "round {round}: consumer saw bad data: {err}");
        }
    }
}
