//! The daemon's files: the pid file, listen.port and ports.txt.
//!
//! A running daemon holds `flock` locks on its pid file and on the directory of its port
//! file for its whole life. A second instance takes the locks before it writes anything,
//! so it refuses to start without changing a byte of the running one's files (the legacy
//! server overwrote the pid file and listen.port and emptied ports.txt, then failed).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Creates the directory that will hold `path`, if it has one.
pub fn make_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|e| Error::io(&e, format!("cannot create directory {}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Replaces `path` with `contents` in one step (write a temporary file, rename it over),
/// so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        file.write_all(contents)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(&e, format!("cannot write {}", path.display()))
    })
}

/// The locks that mark this daemon as the owner of its files; released when dropped
/// (and by the kernel if the daemon dies).
#[derive(Debug)]
pub struct InstanceLock {
    pid_file: Flock<File>,
    pid_path: PathBuf,
    _state_dir: Flock<File>,
}

impl InstanceLock {
    /// Locks the directory of `port_file` and the pid file, creating them if needed but
    /// modifying neither; fails with `EBUSY` when another daemon holds them.
    pub fn acquire(pid_path: &Path, port_file: &Path) -> Result<Self> {
        let state_dir = port_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = File::open(state_dir).map_err(|e| Error::io(&e, format!("cannot open {}", state_dir.display())))?;
        let state_lock = lock(dir, state_dir)?;
        // No truncation here: the file may be the running daemon's.
        let pid = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(pid_path)
            .map_err(|e| Error::io(&e, format!("cannot open pid file {}", pid_path.display())))?;
        let pid_lock = lock(pid, pid_path)?;
        Ok(InstanceLock { pid_file: pid_lock, pid_path: pid_path.to_path_buf(), _state_dir: state_lock })
    }

    /// Writes this process's pid into the locked pid file.
    pub fn write_pid(&mut self) -> Result<()> {
        let context = || format!("cannot write pid file {}", self.pid_path.display());
        self.pid_file.set_len(0).map_err(|e| Error::io(&e, context()))?;
        let text = format!("{}\n", std::process::id());
        (&*self.pid_file).write_all(text.as_bytes()).map_err(|e| Error::io(&e, context()))
    }

    /// Removes the pid file (on a clean exit), while the lock is still held.
    pub fn remove_pid_file(&self) {
        let _ = fs::remove_file(&self.pid_path);
    }
}

fn lock(file: File, path: &Path) -> Result<Flock<File>> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            Error::new(libc::EBUSY, format!("{} is in use by another running daqportmgr", path.display()))
        } else {
            Error::sys(errno, format!("cannot lock {}", path.display()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("daqflow-statefiles-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let pid = dir.join("pid");
        let port = dir.join("listen.port");
        let mut first = InstanceLock::acquire(&pid, &port).unwrap();
        first.write_pid().unwrap();
        let before = fs::read(&pid).unwrap();
        let err = InstanceLock::acquire(&pid, &port).unwrap_err();
        assert_eq!(err.errno(), libc::EBUSY);
        assert_eq!(fs::read(&pid).unwrap(), before);
        write_atomic(&port, b"30000\n").unwrap();
        assert_eq!(fs::read(&port).unwrap(), b"30000\n");
        first.remove_pid_file();
        drop(first);
        assert!(!pid.exists());
        InstanceLock::acquire(&pid, &port).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
