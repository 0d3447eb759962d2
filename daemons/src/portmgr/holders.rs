//! The processes that hold a socket, and their user ids: what the daemon learns about a
//! client beyond the socket's owner when the user a GIMME names is not that owner.
//!
//! The kernel does not say which process is at the other end of a TCP connection, only
//! the socket's inode (`sock_diag`); a process holds it if one of its descriptors in
//! `/proc/<pid>/fd` links to `socket:[inode]`. That takes a walk over every process's
//! descriptors, so the daemon does it only for a name that is not the owner's, at most
//! once per connection, within a time limit.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest the daemon's event loop spends looking (a host with a few hundred
/// processes takes about a millisecond).
pub const SEARCH_LIMIT: Duration = Duration::from_millis(200);

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

/// Every process holding the socket with inode `inode`. An error when the answer could be
/// incomplete (a process whose descriptors this process may not read, the time limit):
/// a holder missed could be the one whose ids decide.
pub fn holders_of(inode: u32, proc_root: &Path, limit: Duration) -> io::Result<Vec<Uids>> {
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
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("more than {} ms", limit.as_millis())));
        }
        let fds = match fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            // Gone meanwhile: it holds nothing any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("cannot read the descriptors of process {pid}: {e}")));
            }
        };
        let mut holds = false;
        for (n, fd) in fds.flatten().enumerate() {
            if n % 256 == 255 && Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("more than {} ms", limit.as_millis())));
            }
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str().as_bytes() == target.as_bytes()) {
                holds = true;
                break;
            }
        }
        if holds {
            match fs::read_to_string(entry.path().join("status")) {
                Ok(status) => found.push(parse_uids(pid, &status).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("no Uid line for process {pid}"))
                })?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
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
        let holders = holders_of(inode, Path::new("/proc"), SEARCH_LIMIT).unwrap();
        let me = nix::unistd::getuid().as_raw();
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert_eq!(holders[0].pid, std::process::id());
        assert_eq!(holders[0].real, me);
        assert!(holders_of(inode, Path::new("/proc"), Duration::ZERO).is_err(), "the time limit is kept");
        drop(client);
        assert_eq!(holders_of(inode, Path::new("/proc"), SEARCH_LIMIT).unwrap(), []);
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
