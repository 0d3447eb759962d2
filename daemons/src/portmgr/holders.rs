//! The processes that hold a socket, and their user ids: what the daemon learns about a
//! client beyond the socket's owner when the user a GIMME names is not that owner.
//!
//! The kernel does not say which process is at the other end of a TCP connection, only
//! the socket's inode (`sock_diag`); a process holds it if one of its descriptors in
//! `/proc/<pid>/fd` links to `socket:[inode]`. That takes a walk over processes'
//! descriptors, so the daemon does it only for a name that is not the owner's, at most
//! once per connection, on a worker thread (`scanner`), within a time limit. Only the
//! descriptors of processes that have the socket's owner among their ids are walked: a
//! user who holds many descriptors then slows only the checks of sockets that user owns.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest one check may take. It runs on the scanner's thread, not the event loop,
/// so it delays only other checks; a host with a few hundred processes takes about a
/// millisecond, one with a user holding 80 000 descriptors a few hundred.
pub const SEARCH_LIMIT: Duration = Duration::from_secs(2);

/// The user ids of one process, from the `Uid:` line of `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uids {
    pub pid: u32,
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub filesystem: u32,
}

impl Uids {
    pub fn has(&self, uid: u32) -> bool {
        [self.real, self.effective, self.saved, self.filesystem].contains(&uid)
    }
}

/// One process, pinned: its `/proc/<pid>` directory opened once, and its descriptors and
/// ids read through that handle. Had they been read by path, a process that exited between
/// the two reads could have had its pid reused, and the ids read would be a stranger's.
/// A handle to an exited process reads nothing (ESRCH), whatever now has its pid.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    dir: fs::File,
}

impl Process {
    pub fn open(proc_root: &Path, pid: u32) -> io::Result<Process> {
        let dir =
            fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(proc_root.join(pid.to_string()))?;
        Ok(Process { pid, dir })
    }

    /// `name` inside the pinned directory: the descriptor's magic link resolves to the
    /// directory opened, as `openat` on the descriptor would.
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.dir.as_raw_fd()))
    }

    pub fn uids(&self) -> io::Result<Uids> {
        let status = fs::read_to_string(self.path("status"))?;
        parse_uids(self.pid, &status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no Uid line for process {}", self.pid)))
    }

    /// Whether one of its descriptors is `target` (`socket:[inode]`); an error past `deadline`.
    fn holds(&self, target: &[u8], deadline: Instant, limit: Duration) -> io::Result<bool> {
        let fds = fs::read_dir(self.path("fd"))?;
        for (n, fd) in fds.flatten().enumerate() {
            if n % 256 == 255 && Instant::now() > deadline {
                return Err(timed_out(limit));
            }
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str().as_bytes() == target) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The process has exited (or was never there): it holds nothing.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("more than {} ms", limit.as_millis()))
}

/// Every process holding the socket with inode `inode` that has `owner` (the socket's
/// owner) among its ids; a process without them was handed the socket by someone else and
/// is not the client's to speak for. An error when the answer could be incomplete (a
/// process whose descriptors this process may not read, the time limit): a holder missed
/// could be the one whose ids decide.
pub fn holders_of(inode: u32, owner: u32, proc_root: &Path, limit: Duration) -> io::Result<Vec<Uids>> {
    let deadline = Instant::now() + limit;
    let target = format!("socket:[{inode}]");
    let mut found = Vec::new();
    for entry in fs::read_dir(proc_root)? {
        let entry = entry?;
        let Some(pid) = std::str::from_utf8(entry.file_name().as_bytes()).ok().and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Instant::now() > deadline {
            return Err(timed_out(limit));
        }
        let process = match Process::open(proc_root, pid).and_then(|p| p.uids().map(|uids| (p, uids))) {
            Ok((process, uids)) if uids.has(owner) => process,
            Ok(_) => continue,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot read process {pid}: {e}"))),
        };
        match process.holds(target.as_bytes(), deadline, limit) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) if is_gone(&e) => continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(e),
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("cannot read the descriptors of process {pid}: {e}")));
            }
        }
        // Read again: the ids it has now, while it holds the socket, are the ones that count.
        match process.uids() {
            Ok(uids) if uids.has(owner) => found.push(uids),
            Ok(_) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}
/// `Uid:\treal\teffective\tsaved\tfilesystem`.
fn parse_uids(pid: u32, status: &str) -> Option<Uids> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let ids: Vec<u32> = line.split_ascii_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    match ids.as_slice() {
        &[real, effective, saved, filesystem] => Some(Uids { pid, real, effective, saved, filesystem }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn finds_this_process_holding_a_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let inode = fs::metadata(format!("/proc/self/fd/{}", client.as_raw_fd()));
        let inode = std::os::unix::fs::MetadataExt::ino(&inode.unwrap()) as u32;
        let me = nix::unistd::getuid().as_raw();
        let holders = holders_of(inode, me, Path::new("/proc"), SEARCH_LIMIT).unwrap();
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert_eq!(holders[0].pid, std::process::id());
        assert_eq!(holders[0].real, me);
        assert!(holders_of(inode, me, Path::new("/proc"), Duration::ZERO).is_err(), "the time limit is kept");
        // Only processes with the owner among their ids are looked at.
        assert_eq!(holders_of(inode, me.wrapping_add(1), Path::new("/proc"), SEARCH_LIMIT).unwrap(), []);
        drop(client);
        assert_eq!(holders_of(inode, me, Path::new("/proc"), SEARCH_LIMIT).unwrap(), []);
    }

    #[test]
    fn a_pinned_process_is_read_even_when_its_pid_is_taken_again() {
        // A stand-in for /proc where process 10 exits and a new process 10 appears
        // between reading the descriptors of the first and reading its ids.
        let root = std::env::temp_dir().join(format!("daqflow-pinned-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("10")).unwrap();
        fs::write(root.join("10/status"), "Uid:\t1000\t1000\t1000\t1000\n").unwrap();
        let first = Process::open(&root, 10).unwrap();
        fs::rename(root.join("10"), root.join("gone")).unwrap();
        fs::create_dir_all(root.join("10")).unwrap();
        fs::write(root.join("10/status"), "Uid:\t0\t0\t0\t0\n").unwrap();
        let uids = first.uids();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(uids.unwrap().real, 1000, "the ids of the process that was opened");
        // The real /proc: a handle to a process that has exited reads nothing.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let exited = Process::open(Path::new("/proc"), child.id()).unwrap();
        child.wait().unwrap();
        let error = exited.uids().unwrap_err();
        assert!(is_gone(&error), "{error}");
    }

    #[test]
    fn status_uid_lines() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n";
        assert_eq!(parse_uids(7, status), Some(Uids { pid: 7, real: 1000, effective: 0, saved: 0, filesystem: 0 }));
        assert_eq!(parse_uids(7, "Uid:\t1\t2\n"), None);
        assert_eq!(parse_uids(7, "Uid:\t1\tx\t2\t3\n"), None);
        assert_eq!(parse_uids(7, ""), None);
    }
}
