//! daqflow-feeder: copies a ring on another host into its local proxy ring.
//! Started by the library when a consumer attaches to tcp://host/ring; not usually
//! run by hand.

use std::fs::File;
use std::os::fd::{FromRawFd, RawFd};
use std::process::ExitCode;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use daqflow::remote::feeder::{self, Plan, Ready};

const USAGE: &str = "\
Usage: daqflow-feeder [--portmgr-port port] [--ready-fd fd] [--] host ring proxy

Reads ring `ring` of `host` through its ring master (REMOTE) and puts every whole ring
item into the local ring `proxy` as its producer. Exits at once if `proxy` already has a
producer; reconnects when the stream breaks; stops when `proxy` has had no consumer for
30 s or is removed.
";

fn parse(args: &[String]) -> Result<(Plan, Option<i32>), String> {
    let mut port = None;
    let mut ready = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> Result<i64, String> {
            let v = it.next().ok_or_else(|| format!("{what} needs a value"))?;
            v.parse().map_err(|_| format!("{what} {v:?} is not a number"))
        };
        match arg.as_str() {
            // Whatever follows is host, ring and proxy, even if it looks like a switch.
            "--" => {
                words.extend(it.by_ref().cloned());
                break;
            }
            "--portmgr-port" => {
                port = Some(u16::try_from(number(arg)?).map_err(|_| "--portmgr-port is out of range".to_string())?)
            }
            "--ready-fd" => {
                ready = Some(i32::try_from(number(arg)?).map_err(|_| "--ready-fd is out of range".to_string())?)
            }
            "--help" | "-h" => return Err(String::new()),
            _ => words.push(arg.clone()),
        }
    }
    let [host, ring, proxy] =
        <[String; 3]>::try_from(words).map_err(|w| format!("expected host, ring and proxy, got {w:?}"))?;
    for name in [&ring, &proxy] {
        daqflow::ring::validate_name(name).map_err(|e| e.message().to_string())?;
    }
    Ok((Plan { host, portmgr_port: port, ring, proxy }, ready))
}

/// Whether descriptor `fd` is open.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory; on a number
    // that is not open it fails (EBADF) and changes nothing.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0
}

fn main() -> ExitCode {
    // Rings announced to the local ring master and `tcp://` names, as NSCLDAQ programs do.
    daqflow::client::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (plan, ready_fd) = match parse(&args) {
        Ok(p) => p,
        Err(why) if why.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("daqflow-feeder: {why}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let ready = ready_fd.filter(|&fd| fd > 2 && is_open(fd)).map(|fd| {
        // SAFETY: open (checked just above), and handed to this program for the report
        // alone: nothing else in the process owns it, and it is taken once, here.
        let file = unsafe { File::from_raw_fd(fd) };
        let _ = fcntl(&file, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        file
    });
    match feeder::run(&plan, Ready::new(ready)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daqflow-feeder {}/{}: {e}", plan.host, plan.ring);
            ExitCode::FAILURE
        }
    }
}
