//! The demo (`make demo`): while data flows it shows `ringbuffer status` tables and its
//! progress, as plain lines into a pipe and as one line redrawn in place on a terminal.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_daqflow-demo");

/// One demo at a time, on a machine shared by several test binaries (two at once are
/// tested on their own).
static ONE_DEMO: Mutex<()> = Mutex::new(());

fn one_demo() -> MutexGuard<'static, ()> {
    ONE_DEMO.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn piped_output_has_status_tables_and_plain_progress_lines() {
    let _one = one_demo();
    let out = Command::new(DEMO).args(["--seconds", "2", "--consumers", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains('\r') && !text.contains('\x1b'), "terminal controls in piped output:\n{text}");
    // At least one table taken while the producer was attached, with both consumers.
    let tables: Vec<&str> =
        text.split("--- ringbuffer status ").skip(1).filter(|t| !t.contains("(at the end)")).collect();
    assert!(!tables.is_empty(), "no status while data flowed:\n{text}");
    let rows: Vec<Vec<&str>> = tables[0].lines().skip(3).map(|l| l.split_whitespace().collect()).collect();
    assert!(rows[0][4].parse::<i32>().is_ok_and(|pid| pid > 0), "no producer in:\n{}", tables[0]);
    assert_eq!(rows.iter().filter(|r| r.first() == Some(&"-") && r.len() == 10).count(), 2, "{}", tables[0]);
    let progress: Vec<&str> = text.lines().filter(|l| l.starts_with("daqflow-demo: ") && l.contains("% ")).collect();
    assert!(!progress.is_empty() && progress.len() <= 4, "one plain progress line a second:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("daqflow-demo: data flow done after")), "{text}");
    assert!(text.contains("demo OK: "), "{text}");
}

#[test]
fn a_volume_instead_of_a_time() {
    let _one = one_demo();
    let out = Command::new(DEMO).args(["--megabytes", "16", "--consumers", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("demo OK: 17 MB delivered to each of 1 consumers"), "{text}");
    let both = Command::new(DEMO).args(["--megabytes", "16", "--seconds", "1"]).output().unwrap();
    assert_eq!(both.status.code(), Some(2), "--seconds and --megabytes together");
}

#[test]
fn on_a_terminal_progress_is_one_line_redrawn() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed, so the demo's progress line was not tried in a terminal");
        return;
    }
    let _one = one_demo();
    let socket = format!("daqflow-demo-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").arg("-L").arg(&socket).args(args).output().unwrap();
    let command = format!("{DEMO} --seconds 3 --consumers 1; echo DEMO-EXIT=$?; sleep 30");
    assert!(tmux(&["new-session", "-d", "-s", "d", "-x", "150", "-y", "60", &command]).status.success());
    let start = Instant::now();
    let mut seen_bar = false;
    let screen = loop {
        let screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "d"]).stdout).into_owned();
        let bars = screen.lines().filter(|l| l.starts_with("daqflow-demo [") && l.contains("% ")).count();
        assert!(bars <= 1, "the progress line was not redrawn in place:\n{screen}");
        seen_bar |= bars == 1;
        if screen.contains("DEMO-EXIT=") {
            break screen;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the demo did not finish:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = tmux(&["kill-server"]);
    assert!(seen_bar, "no progress bar while the demo ran:\n{screen}");
    assert!(screen.contains("DEMO-EXIT=0"), "{screen}");
    assert!(!screen.lines().any(|l| l.starts_with("daqflow-demo [")), "the progress line was left behind:\n{screen}");
}

/// Two demos at once: each has its own port manager on the default range, and both used
/// to hand their producers the same port, on which the second then failed to listen.
#[test]
fn two_demos_at_once() {
    let _one = one_demo();
    let demo = || Command::new(DEMO).args(["--seconds", "2", "--consumers", "1"]).output();
    let first = std::thread::spawn(demo);
    std::thread::sleep(Duration::from_millis(300));
    let second = demo().expect("run the second demo");
    let first = first.join().expect("first demo thread").expect("run the first demo");
    for (which, out) in [("first", &first), ("second", &second)] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "the {which} demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("demo OK: "), "{which}: {text}");
    }
}
