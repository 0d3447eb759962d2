//! The terminal for `top`: keys without echo or line buffering, the alternate screen,
//! the window size, and the signals that end, suspend or resize the view. Everything it
//! changes is put back when the `Terminal` is dropped: on `q`, on Ctrl-C, Ctrl-\,
//! SIGTERM or SIGHUP, on an error and on a panic (the release profile unwinds); while
//! suspended (Ctrl-Z) and, by the signal handler, before dying of SIGBUS.
//!
//! Written against termios rather than crossterm (0.29, weighed for issue 14; ratatui
//! draws through it, and would also replace render.rs's tested text layout):
//! - the terminal is put back from signal handlers (Ctrl-Z, SIGBUS), where only
//!   async-signal-safe calls may run; crossterm keeps the settings to restore behind a
//!   mutex, so the saved termios, the raw writes and the handlers here would stay anyway;
//! - its raw mode is cfmakeraw's: no ISIG (Ctrl-C, Ctrl-\ and Ctrl-Z become keys to
//!   re-implement, while `kill -TSTP` still needs the handler) and no OPOST;
//! - its event wait retries on EINTR, so SIGTERM or SIGHUP would be seen only when the
//!   wait ends (with no ring to sample, the refresh interval: up to 10 s), not at once;
//! - its resize events come with a SIGWINCH handler of its own (signal-hook), and its
//!   window size falls back to running `tput`;
//! - it brings 28 crates (a second parking_lot and syn among them) for what is here a
//!   few escape strings, one ioctl and a read.
//!
//! The termios stays libc's: it is what the handlers restore, and nix's `Termios` drops
//! flag bits it does not know when written back, where the user's settings must come
//! back exactly.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static STOP: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(signal: libc::c_int) {
    if signal == libc::SIGINT {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_resize(_: libc::c_int) {
    RESIZED.store(true, Ordering::SeqCst);
}

/// The terminal settings found (to restore) and the view's own, for signal handlers.
static MODES: OnceLock<(libc::termios, libc::termios)> = OnceLock::new();

/// Puts the terminal back as it was found; only async-signal-safe calls.
fn leave() {
    // SAFETY: write and tcsetattr are async-signal-safe; LEAVE and the termios are statics.
    unsafe {
        libc::write(1, LEAVE.as_ptr().cast(), LEAVE.len());
        if let Some((saved, _)) = MODES.get() {
            libc::tcsetattr(0, libc::TCSANOW, saved);
        }
    }
}

/// Ctrl-Z: the shell gets its terminal back while the view is stopped; on `fg` the view
/// takes it again and redraws.
extern "C" fn on_suspend(_: libc::c_int) {
    leave();
    // SAFETY: kill, write and tcsetattr are async-signal-safe. Stops here until SIGCONT.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
        if let Some((_, raw)) = MODES.get() {
            libc::tcsetattr(0, libc::TCSANOW, raw);
        }
        libc::write(1, ENTER.as_ptr().cast(), ENTER.len());
    }
    RESIZED.store(true, Ordering::SeqCst);
}

/// SIGBUS (a ring truncated between the watcher's size check and its read): the
/// terminal is restored, then the signal kills the process as it would have.
extern "C" fn on_fault(signal: libc::c_int) {
    leave();
    // SAFETY: signal and raise are async-signal-safe. The raised signal is blocked until
    // the handler returns, then kills (as the fault would on its next try).
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Why the view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `q` (or Ctrl-\, SIGTERM, SIGHUP).
    Quit,
    /// Ctrl-C.
    Interrupted,
}

pub struct Terminal {
    saved: libc::termios,
    old_actions: Vec<(Signal, SigAction)>,
}

const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
const LEAVE: &str = "\x1b[0m\x1b[?25h\x1b[?1049l";

impl Terminal {
    /// Takes over the terminal on stdin/stdout; an error when either is not one.
    pub fn take() -> Result<Terminal, String> {
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            return Err("top needs a terminal on stdin and stdout (use `ringbuffer status` in scripts)".to_string());
        }
        // SAFETY: termios is plain data, filled in by tcgetattr before use.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal (checked) and `saved` is a valid termios.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return Err(format!("cannot read the terminal settings: {}", std::io::Error::last_os_error()));
        }
        let mut raw = saved;
        // Keys arrive one by one, unechoed; ISIG stays on so Ctrl-C still raises SIGINT,
        // which ends the view through the handler below.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        if MODES.set((saved, raw)).is_err() {
            return Err("the terminal is already taken".to_string());
        }
        let mut old_actions = Vec::new();
        let stop = SigAction::new(SigHandler::Handler(on_stop), SaFlags::empty(), SigSet::empty());
        let resize = SigAction::new(SigHandler::Handler(on_resize), SaFlags::SA_RESTART, SigSet::empty());
        let suspend = SigAction::new(SigHandler::Handler(on_suspend), SaFlags::empty(), SigSet::empty());
        let fault = SigAction::new(SigHandler::Handler(on_fault), SaFlags::empty(), SigSet::empty());
        for (signal, action) in [
            (Signal::SIGINT, &stop),
            (Signal::SIGQUIT, &stop),
            (Signal::SIGTERM, &stop),
            (Signal::SIGHUP, &stop),
            (Signal::SIGWINCH, &resize),
            (Signal::SIGTSTP, &suspend),
            (Signal::SIGBUS, &fault),
        ] {
            // SAFETY: the handlers store to atomics and make only async-signal-safe calls.
            match unsafe { sigaction(signal, action) } {
                Ok(old) => old_actions.push((signal, old)),
                Err(e) => {
                    restore_actions(&old_actions);
                    return Err(format!("cannot handle {signal}: {e}"));
                }
            }
        }
        let terminal = Terminal { saved, old_actions };
        // SAFETY: fd 0 is a terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return Err(format!("cannot set the terminal mode: {}", std::io::Error::last_os_error()));
        }
        terminal.write(ENTER)?;
        Ok(terminal)
    }

    /// (columns, rows), from TIOCGWINSZ; 80x24 if the terminal does not say.
    pub fn size(&self) -> (usize, usize) {
        // SAFETY: winsize is plain data, filled in by the ioctl.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
        let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 && ws.ws_row > 0 { (ws.ws_col as usize, ws.ws_row as usize) } else { (80, 24) }
    }

    /// Whether the window changed size since the last call.
    pub fn resized(&self) -> bool {
        RESIZED.swap(false, Ordering::SeqCst)
    }

    pub fn write(&self, text: &str) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to the terminal: {e}"))
    }

    /// Waits up to `wait` for a key or a signal; `Some` when the view must end.
    pub fn wait(&self, wait: Duration) -> Result<Option<Exit>, String> {
        if let Some(exit) = stopped() {
            return Ok(Some(exit));
        }
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        // Rounded up: a wait cut to 0 ms would spin until the next sample is due.
        let millis = wait.as_micros().div_ceil(1000);
        let timeout =
            i32::try_from(millis).ok().and_then(|ms| PollTimeout::try_from(ms).ok()).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(stopped()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot wait for keys: {e}")),
        }
        // One key at a time: what is typed after `q` stays queued for the shell.
        let mut key = [0u8; 1];
        // Poll said there is input: no data is the terminal gone; a failed read (EINTR: a
        // signal since, whose flag is looked at below) is nothing read this time.
        match nix::unistd::read(stdin.as_fd(), &mut key) {
            Ok(0) => return Err("the terminal closed".to_string()),
            Ok(_) => match key[0] {
                // Ctrl-C arrives as a byte only on a terminal whose intr key is something else.
                3 => return Ok(Some(Exit::Interrupted)),
                b'q' | b'Q' => return Ok(Some(Exit::Quit)),
                _ => {}
            },
            Err(_) => {}
        }
        Ok(stopped())
    }
}

fn stopped() -> Option<Exit> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Some(Exit::Interrupted)
    } else if STOP.load(Ordering::SeqCst) {
        Some(Exit::Quit)
    } else {
        None
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.write(LEAVE);
        // SAFETY: restores the settings read in `take` on the same terminal.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
        restore_actions(&self.old_actions);
    }
}

fn restore_actions(old_actions: &[(Signal, SigAction)]) {
    for (signal, old) in old_actions {
        // SAFETY: puts back the handlers that were there before.
        let _ = unsafe { sigaction(*signal, old) };
    }
}
