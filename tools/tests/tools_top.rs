//! `ringbuffer top` in a real terminal: a private tmux server runs it in a window of a
//! fixed size while data flows through a ring with one fast and one slow consumer. The
//! screen is read back with capture-pane: the fill bar, non-zero rates, the slow consumer
//! highlighted as the bottleneck, a resize, and a clean exit on q and on Ctrl-C (the
//! normal screen back, the cursor shown, the terminal in cooked mode again).

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daqflow::ring::{self, Consumer, CreateOptions, Producer};

const RINGBUFFER: &str = env!("CARGO_BIN_EXE_ringbuffer");
const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A plain shell with a fixed prompt, so its lines are easy to find.
    fn start(cols: u16, rows: u16) -> Option<Tmux> {
        Tmux::start_with("sh", cols, rows, &["env", "PS1=$ ", "sh"])
    }

    /// A window running `command`; `tag` keeps the servers of tests run at once apart.
    fn start_with(tag: &str, cols: u16, rows: u16, command: &[&str]) -> Option<Tmux> {
        let tmux = Tmux { socket: format!("daqflow-top-{tag}-{}", std::process::id()) };
        let size = [cols.to_string(), rows.to_string()];
        let mut args = vec!["new-session", "-d", "-s", "t", "-x", &size[0], "-y", &size[1]];
        args.extend_from_slice(command);
        let out = tmux.run(&args).ok()?;
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).expect("tmux send-keys").status.success());
    }

    /// The visible screen; with escapes (`-e`) it shows the attributes too.
    fn screen(&self, escapes: bool) -> String {
        let args: &[&str] =
            if escapes { &["capture-pane", "-p", "-e", "-t", "t"] } else { &["capture-pane", "-p", "-t", "t"] };
        String::from_utf8_lossy(&self.run(args).expect("tmux capture-pane").stdout).into_owned()
    }

    fn format(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "t", format]).expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until `check` accepts the screen; fails with the last screen if it never does.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(false);
            if check(&screen) {
                return screen;
            }
            assert!(start.elapsed() < WAIT, "{what} never showed; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The shell's terminal mode after the view ended: cooked unless `stty` shows
    /// -icanon or -echo.
    fn assert_restored(&self, marker: &str) {
        assert_eq!(self.format("#{alternate_on}"), "0", "still on the alternate screen");
        assert_eq!(self.format("#{cursor_flag}"), "1", "the cursor is still hidden");
        self.keys(&[
            &format!("m=cooked; case \"$(stty)\" in *-icanon*|*-echo\\ *) m=raw;; esac; echo \"{marker}=[$m]\""),
            "Enter",
        ]);
        let cooked = format!("{marker}=[cooked]");
        let raw = format!("{marker}=[raw]");
        let screen = self.wait_for("the terminal mode", |s| s.contains(&cooked) || s.contains(&raw));
        assert!(screen.contains(&cooked), "terminal left in raw mode:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A ring with a producer, a consumer that keeps up and one that reads 32 KiB every
/// 10 ms (about 3 MB/s), which fills the ring and sets everyone's pace.
struct Flow {
    name: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Flow {
    fn start(name: String) -> Flow {
        ring::create(&name, CreateOptions { data_bytes: 1 << 20, max_consumers: 4, ..Default::default() })
            .expect("create");
        let stop = Arc::new(AtomicBool::new(false));
        let mut fast = Consumer::attach(&name).expect("fast consumer");
        let mut slow = Consumer::attach(&name).expect("slow consumer");
        let mut producer = Producer::attach(&name).expect("producer");
        let mut threads = Vec::new();
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let chunk = [7u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let _ = producer.put(&chunk, Some(Duration::from_millis(50)));
            }
        }));
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !s.load(Ordering::Relaxed) {
                let _ = fast.get(&mut buf, 1, Some(Duration::from_millis(50)));
            }
        }));
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            while !s.load(Ordering::Relaxed) {
                let _ = slow.get(&mut buf, 1, Some(Duration::from_millis(50)));
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
        Flow { name, stop, threads }
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = ring::remove(&self.name);
    }
}

/// The inner width of the fill bar on the screen's first bar line.
fn bar_width(screen: &str) -> Option<usize> {
    let line = screen.lines().find(|l| l.trim_start().starts_with("[#") || l.trim_start().starts_with("[."))?;
    Some(line.find(']')? - line.find('[')? - 1)
}

/// The MB/s figure of the consumer line for `slot`.
fn consumer_rate(screen: &str, slot: u32) -> Option<f64> {
    let line = screen.lines().find(|l| l.split_whitespace().next() == Some(&slot.to_string()))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn producer_rate(screen: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains(" at ") && l.contains("MB/s"))?;
    line.split(" at ").nth(1)?.split_whitespace().next()?.parse().ok()
}

#[test]
fn top_in_a_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!(
            "SKIPPED: tmux is not installed, so `ringbuffer top` was not tried in a terminal (apt-get install tmux)"
        );
        return;
    }
    let name = format!("t-top-{}", std::process::id());
    let _ = ring::remove(&name);
    let _flow = Flow::start(name.clone());
    let tmux = Tmux::start(100, 30).expect("tmux starts a session");
    let command = format!("{RINGBUFFER} top --interval=200 '{name}*'; echo EXIT=$?");
    tmux.keys(&[&command, "Enter"]);

    // The slow consumer (slot 1) fills the ring and is marked; rates are measured.
    let screen = tmux.wait_for("the ring, flowing, with its bottleneck", |s| {
        s.contains(&name)
            && s.contains("<< bottleneck")
            && producer_rate(s).is_some_and(|r| r > 0.5)
            && consumer_rate(s, 0).is_some_and(|r| r > 0.5)
    });
    assert!(screen.contains("producer short of space"), "{screen}");
    let marked: Vec<&str> = screen.lines().filter(|l| l.contains("<< bottleneck")).collect();
    assert_eq!(marked.len(), 1, "{screen}");
    assert_eq!(marked[0].split_whitespace().next(), Some("1"), "the slow consumer is slot 1:\n{screen}");
    // Rates agree with the pace the slow consumer sets (about 3 MB/s, shared 2 cores).
    let rate = producer_rate(&screen).unwrap_or(0.0);
    assert!(rate < 20.0, "the producer cannot outrun a 3 MB/s consumer, yet shows {rate} MB/s:\n{screen}");
    // The fill bar is nearly full, 100 - 58 = 42 cells wide.
    assert_eq!(bar_width(&screen), Some(42), "{screen}");
    let bar_line = screen.lines().find(|l| l.contains("% full")).unwrap_or_default();
    let hashes = bar_line.matches('#').count();
    assert!(hashes >= 31, "a ring held full by a slow consumer shows {hashes}/42 cells:\n{screen}");
    // The highlight is an attribute of that row alone (reverse video).
    let styled = tmux.screen(true);
    let rows: Vec<&str> =
        styled.lines().filter(|l| l.contains("reader") || l.contains("<< bottleneck") || l.contains(" 0 ")).collect();
    let marked = styled.lines().find(|l| l.contains("<< bottleneck")).unwrap_or_default();
    assert!(
        marked.contains("\x1b[") && marked.contains("7m"),
        "the bottleneck row is not in reverse video: {marked:?}"
    );
    let slot0 = styled.lines().find(|l| l.split_whitespace().next() == Some("0")).unwrap_or_default();
    assert!(!slot0.contains("7m"), "slot 0 is highlighted too: {slot0:?} ({rows:?})");

    // A narrower window: the bar shrinks to fit at once.
    assert!(tmux.run(&["resize-window", "-t", "t", "-x", "70", "-y", "20"]).unwrap().status.success());
    let screen = tmux.wait_for("a 70-column layout", |s| bar_width(s) == Some(12));
    assert!(screen.lines().all(|l| l.chars().count() <= 70), "{screen}");

    // Rings come and go while the view runs.
    let extra = format!("{name}-extra");
    ring::create(&extra, CreateOptions { data_bytes: 4096, max_consumers: 1, ..Default::default() }).expect("create");
    tmux.wait_for("a ring created meanwhile", |s| s.contains(&extra) && s.contains("no consumers"));
    ring::remove(&extra).expect("remove");
    tmux.wait_for("a removed ring gone", |s| !s.contains(&extra) && s.contains(": 1 ring matching"));

    tmux.keys(&["q"]);
    tmux.wait_for("exit status after q", |s| s.contains("EXIT=0"));
    tmux.assert_restored("AFTER_Q");

    assert!(tmux.run(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]).unwrap().status.success());
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&command, "Enter"]);
    tmux.wait_for("the view again", |s| s.contains("<< bottleneck"));
    tmux.keys(&["C-c"]);
    tmux.wait_for("exit status after Ctrl-C", |s| s.contains("EXIT=130"));
    tmux.assert_restored("AFTER_CTRL_C");
}

/// Rings removed on drop, however the test ends.
struct Rings(Vec<String>);

impl Drop for Rings {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = ring::remove(name);
        }
    }
}

/// How often a process has slept and woken up so far.
fn wakeups(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Watching idle rings costs next to nothing: rings whose pointers do not move are
/// sampled every 16 ms, together, not each every millisecond (which woke the view a
/// thousand times a second and, with 50 rings, took 5% of a core).
#[test]
fn top_sleeps_while_rings_are_idle() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let prefix = format!("t-idle-{}", std::process::id());
    let rings = Rings((0..20).map(|i| format!("{prefix}-{i}")).collect());
    for name in &rings.0 {
        let _ = ring::remove(name);
        ring::create(name, CreateOptions { data_bytes: 64 << 10, max_consumers: 100, ..Default::default() })
            .expect("create");
    }
    let pattern = format!("{prefix}-*");
    let tmux = Tmux::start_with("idle", 100, 30, &[RINGBUFFER, "top", &pattern]);
    let tmux = tmux.expect("tmux starts a session");
    tmux.wait_for("the idle rings", |s| s.contains("20 rings matching"));
    let pid = tmux.format("#{pane_pid}");
    let before = wakeups(&pid);
    std::thread::sleep(Duration::from_secs(2));
    let woken = wakeups(&pid) - before;
    tmux.keys(&["q"]);
    // 4 redraws a second, about 63 rounds of samples, a few key polls: well under 200.
    assert!(woken < 400, "top woke {woken} times in 2 s watching 20 idle rings");
}

/// The pid of the shell's child (the view it runs), once there is one.
fn child_of(shell: &str) -> String {
    let start = Instant::now();
    loop {
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.to_string();
        }
        assert!(start.elapsed() < WAIT, "the shell started no view");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// However the view ends or pauses, the shell gets its terminal back: SIGTERM, SIGHUP,
/// Ctrl-\ (SIGQUIT, which used to leave it raw, so that the shell read end-of-file and
/// exited), SIGBUS (the view dies of it, the terminal restored first) and Ctrl-Z (the
/// shell's terminal while stopped; after fg the view again, and q).
#[test]
fn top_gives_the_terminal_back_however_it_ends() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let tmux = Tmux::start_with("signals", 80, 24, &["env", "PS1=$ ", "sh"]).expect("tmux starts a session");
    let shell = tmux.format("#{pane_pid}");
    let command = format!("{RINGBUFFER} top; echo EXIT=$?");
    for (signal, status) in [("TERM", 0), ("HUP", 0), ("QUIT", 0), ("BUS", 128 + libc::SIGBUS)] {
        tmux.keys(&["clear", "Enter"]);
        tmux.keys(&[&command, "Enter"]);
        tmux.wait_for("the view", |s| s.contains("ringbuffer top:"));
        let view = child_of(&shell);
        assert!(Command::new("kill").args([&format!("-{signal}"), &view]).status().expect("kill").success());
        let exit = format!("EXIT={status}");
        tmux.wait_for(&format!("{exit} after SIG{signal}"), |s| s.contains(&exit));
        tmux.assert_restored(&format!("AFTER_{signal}"));
    }
    // Alone: a shell runs the rest of a list when a job in it stops.
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&format!("{RINGBUFFER} top"), "Enter"]);
    tmux.wait_for("the view", |s| s.contains("ringbuffer top:"));
    tmux.keys(&["C-z"]);
    tmux.wait_for("the shell while the view is stopped", |s| s.contains("$ ") && !s.contains("ringbuffer top:"));
    tmux.assert_restored("STOPPED");
    tmux.keys(&["fg", "Enter"]);
    tmux.wait_for("the view after fg", |s| s.contains("ringbuffer top:"));
    assert_eq!(tmux.format("#{alternate_on}"), "1", "the view is back on the alternate screen");
    tmux.keys(&["q"]);
    tmux.keys(&["echo FG=$?", "Enter"]);
    tmux.wait_for("FG=0 after fg and q", |s| s.contains("FG=0"));
    tmux.assert_restored("AFTER_FG_Q");
}

/// What is typed after `q` is the shell's: the view reads keys one at a time and stops at
/// `q`. It used to read up to 64 bytes at once, so a command typed quickly after `q` (or
/// sent with it, as here: tmux writes these keys to the terminal together) was swallowed.
#[test]
fn keys_typed_after_q_reach_the_shell() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let tmux = Tmux::start_with("ahead", 80, 24, &["env", "PS1=$ ", "sh"]).expect("tmux starts a session");
    tmux.keys(&[&format!("{RINGBUFFER} top"), "Enter"]);
    tmux.wait_for("the view", |s| s.contains("ringbuffer top:"));
    tmux.keys(&["q", "echo AHEAD=$?", "Enter"]);
    tmux.wait_for("the command typed after q, run by the shell", |s| s.contains("AHEAD=0"));
    tmux.assert_restored("AFTER_AHEAD");
}
