//! ringbuffer: NSCLDAQ's shell command for rings (create, format, delete, list, status),
//! with `--json` for scripts and `top`, a live view. See man/ringbuffer.1.

mod args;
mod frib;
mod json;
mod remote;
mod rings;
mod table;
mod top;

use std::process::ExitCode;

use args::{Command, Owners, USAGE};
use daqflow::Error;
use daqflow::ring::{self, CreateOptions};
use daqflow_tools::glob;
use rings::RingStatus;

/// Exit statuses a script can test; listed in USAGE and ringbuffer(1).
mod status {
    pub const FAILED: u8 = 1;
    pub const NO_SUCH_RING: u8 = 2;
    pub const EXISTS: u8 = 3;
    pub const IN_USE: u8 = 4;
    pub const DENIED: u8 = 5;
    pub const UNREACHABLE: u8 = 6;
    /// As NSCLDAQ's script (`exit -1`), daqportmgr and lsservices.
    pub const USAGE: u8 = 255;
    /// Ctrl-C in `top`, as a shell reports a command ended by SIGINT.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit status for a failure. Asking another host, anything but a missing ring or a
/// bad request means that host, its port manager or its ring master did not answer as
/// needed; here, the errno says what went wrong with the ring.
fn exit_status(e: &Error, remote: bool) -> u8 {
    match e.errno() {
        libc::ENOENT => status::NO_SUCH_RING,
        libc::EINVAL => status::FAILED,
        _ if remote => status::UNREACHABLE,
        libc::EEXIST => status::EXISTS,
        libc::EBUSY => status::IN_USE,
        libc::EACCES | libc::EPERM => status::DENIED,
        _ => status::FAILED,
    }
}

/// Whether `command` asks another host.
fn is_remote(command: &Command) -> bool {
    match command {
        Command::List { host, .. } | Command::Status { host, .. } => remote_host(host).is_some(),
        _ => false,
    }
}

/// The host a listing is about: None is this host.
fn remote_host(host: &Option<String>) -> Option<&str> {
    host.as_deref().filter(|h| !remote::is_local(h))
}

fn host_label(host: &Option<String>) -> String {
    host.clone().unwrap_or_else(|| "localhost".to_string())
}

fn list(host: &Option<String>, json: bool) -> Result<(), Error> {
    let names = match remote_host(host) {
        Some(h) => remote::status(h)?.into_iter().map(|r| r.name).collect(),
        None => rings::local_names("*")?,
    };
    if json {
        print!("{}", json::list(&host_label(host), &names));
    } else {
        for name in names {
            println!("{}", rings::printable(&name));
        }
    }
    Ok(())
}

/// A plain name (no glob characters) that names no ring is an error a script can test,
/// not an empty table.
fn no_such_ring(name: &str, host: &str) -> Error {
    Error::new(libc::ENOENT, format!("no ring named {name} on {host}"))
}

/// Prints the status; Ok(false) when some ring could not be read (reported on stderr,
/// or in the JSON's "errors").
fn show_status(host: &Option<String>, owners: &Owners, pattern: &str, json: bool) -> Result<bool, Error> {
    let (rings, failures) = match remote_host(host) {
        Some(h) => {
            if *owners != Owners::All && *owners != Owners::Me {
                return Err(Error::new(
                    libc::EINVAL,
                    format!("--user cannot select {h}'s rings: its ring master does not say who owns them"),
                ));
            }
            let rings: Vec<RingStatus> =
                remote::status(h)?.into_iter().filter(|r| glob::matches(pattern, &r.name)).collect();
            if !glob::is_pattern(pattern) && rings.is_empty() {
                return Err(no_such_ring(pattern, h));
            }
            (rings, Vec::new())
        }
        None => {
            if !glob::is_pattern(pattern) && rings::local_names(pattern)?.is_empty() {
                return Err(no_such_ring(pattern, "this host"));
            }
            rings::local_status(pattern, owners)?
        }
    };
    if json {
        print!("{}", json::status(&host_label(host), &rings, &failures));
    } else {
        print!("{}", table::render(&rings));
        for f in &failures {
            eprintln!("ringbuffer: {}: {}", rings::printable(&f.name), rings::printable(&f.error.to_string()));
        }
    }
    Ok(failures.is_empty())
}

fn run(command: Command) -> Result<u8, Error> {
    match command {
        Command::Create { name, data_bytes, max_consumers } => {
            ring::create(&name, CreateOptions { data_bytes, max_consumers, ..CreateOptions::default() })?
        }
        Command::Format { name, max_consumers } => ring::format(&name, max_consumers)?,
        Command::Delete { name } => ring::remove(&name)?,
        Command::List { host, json } => list(&host, json)?,
        Command::Status { host, owners, pattern, json } => {
            if !show_status(&host, &owners, &pattern, json)? {
                return Ok(status::FAILED);
            }
        }
        Command::Top { interval, pattern } => {
            return match top::run(interval, &pattern) {
                Ok(top::Exit::Quit) => Ok(0),
                Ok(top::Exit::Interrupted) => Ok(status::INTERRUPTED),
                Err(why) => Err(Error::new(libc::EINVAL, why)),
            };
        }
        Command::Help(text) => print!("{text}"),
    }
    Ok(0)
}

fn main() -> ExitCode {
    // Rings announced to the local ring master and `tcp://` names, as NSCLDAQ programs do.
    daqflow::client::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args::parse(&args) {
        Ok(command) => command,
        Err(why) => {
            eprintln!("ringbuffer: {why}\n{USAGE}");
            return ExitCode::from(status::USAGE);
        }
    };
    let remote = is_remote(&command);
    match run(command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ringbuffer: {}", rings::printable(&e.to_string()));
            ExitCode::from(exit_status(&e, remote))
        }
    }
}
