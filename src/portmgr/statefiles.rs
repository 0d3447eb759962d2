//! The daemon's files: the pid file, listen.port and ports.txt.
//!
//! ports.txt changes on every allocation and release, before the reply goes out, so its
//! update sits on the request path. Writing a new file and renaming it over the old one
//! costs 0.4-0.8 ms on ext4 (replacing a file with delayed-allocation data by rename
//! starts writeback of the new one), so [`SwapFile`] keeps a second, hidden copy,
//! rewrites that in place and swaps the two names atomically with
//! `renameat2(RENAME_EXCHANGE)`: about 25 microseconds, and still never a half-written
//! ports.txt for a reader that opens it.
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
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};

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

/// A file replaced whole on every change, by swapping in a rewritten spare copy.
///
/// Both copies stay open: after each exchange the roles of the two descriptors swap, so
/// an update is one `pwrite`, sometimes an `ftruncate`, and one `renameat2`.
#[derive(Debug)]
pub struct SwapFile {
    path: PathBuf,
    spare_path: PathBuf,
    /// The copy that is not published (at `spare_path`), and the length of its contents.
    spare: (File, u64),
    /// The published copy (at `path`), once there is one.
    published: Option<(File, u64)>,
    /// Cleared when the file system cannot exchange names (then write and rename).
    exchange: bool,
}

impl SwapFile {
    /// The spare copy is `.<name>.swap` in the same directory (a rename cannot cross file
    /// systems).
    pub fn new(path: &Path) -> Result<SwapFile> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let spare_path = path.with_file_name(format!(".{name}.swap"));
        let spare = open_spare(&spare_path)?;
        Ok(SwapFile { path: path.to_path_buf(), spare_path, spare, published: None, exchange: true })
    }

    /// Makes `contents` the file's contents in one step.
    pub fn replace(&mut self, contents: &[u8]) -> Result<()> {
        if !self.exchange {
            return write_atomic(&self.path, contents);
        }
        self.fill_spare(contents).map_err(|e| Error::io(&e, format!("cannot write {}", self.spare_path.display())))?;
        match renameat2(AT_FDCWD, &self.spare_path, AT_FDCWD, &self.path, RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => {}
            // No file yet to exchange with (or not ours): the spare simply becomes it.
            Err(Errno::ENOENT) => {
                fs::rename(&self.spare_path, &self.path)
                    .map_err(|e| Error::io(&e, format!("cannot write {}", self.path.display())))?;
                let fresh = open_spare(&self.spare_path)?;
                self.published = Some(std::mem::replace(&mut self.spare, fresh));
                return Ok(());
            }
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                self.exchange = false;
                let _ = fs::remove_file(&self.spare_path);
                return write_atomic(&self.path, contents);
            }
            Err(e) => return Err(Error::sys(e, format!("cannot replace {}", self.path.display()))),
        }
        match self.published.as_mut() {
            Some(published) => std::mem::swap(&mut self.spare, published),
            // Exchanged with a file left by an earlier run: ours is published now, and the
            // old one (now at the spare path) is overwritten next time.
            None => {
                let old = open_spare(&self.spare_path)?;
                self.published = Some(std::mem::replace(&mut self.spare, old));
                self.spare.1 = u64::MAX;
            }
        }
        Ok(())
    }

    /// Overwrites the spare in place: truncating it to zero first would make ext4 flush it.
    fn fill_spare(&mut self, contents: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let (file, len) = &mut self.spare;
        file.write_all_at(contents, 0)?;
        if *len > contents.len() as u64 {
            file.set_len(contents.len() as u64)?;
        }
        *len = contents.len() as u64;
        Ok(())
    }

    /// Removes the spare copy (on a clean exit).
    pub fn remove_spare(&self) {
        let _ = fs::remove_file(&self.spare_path);
    }
}

fn open_spare(path: &Path) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| Error::io(&e, format!("cannot open {}", path.display())))?;
    // Unknown contents: the first fill truncates to its own length.
    Ok((file, u64::MAX))
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

    #[test]
    fn swap_file_always_holds_the_latest_contents() {
        let dir = std::env::temp_dir().join(format!("daqflow-swapfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ports.txt");
        fs::write(&path, b"left by an earlier run, longer than anything below\n").unwrap();
        let mut file = SwapFile::new(&path).unwrap();
        for contents in [&b"1\ta\tu\n2\tb\tu\n"[..], b"", b"3\tlonger name\tuser\n", b"4\tx\ty\n", b"5\ty\tz\n"] {
            file.replace(contents).unwrap();
            assert_eq!(fs::read(&path).unwrap(), contents);
        }
        file.remove_spare();
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["ports.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
