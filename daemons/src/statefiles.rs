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

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, OFlag, RenameFlags, openat, renameat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, lstat};
use nix::unistd::{UnlinkatFlags, geteuid, unlinkat};

use daqflow::error::{Error, Result};

/// Mode of the directories the daemon creates: others read listen.port and ports.txt,
/// only the daemon writes there.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// The directory a file path lives in ("." for a bare name).
fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The last component of a file path, which every state file is opened by, relative to
/// its directory's descriptor.
fn name_of(path: &Path) -> Result<OsString> {
    path.file_name()
        .map(OsStr::to_os_string)
        .ok_or_else(|| Error::new(libc::EINVAL, format!("{} does not name a file", path.display())))
}

/// Creates `dir` (and its parents) with mode 0755 when missing.
fn create_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::io(&e, format!("cannot create directory {}", dir.display())))
}

/// Creates the directory that will hold `path` (the log file), if it has one.
pub fn make_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => create_dir(dir),
        _ => Ok(()),
    }
}

fn is_kind(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind
}

/// A directory the daemon keeps files in, held open: every file in it is opened, renamed
/// and removed relative to this descriptor with `O_NOFOLLOW`, so neither a symlink
/// planted in it nor one swapped in for the directory's path redirects a write of a
/// daemon that may run as root.
#[derive(Debug)]
pub struct StateDir {
    dir: File,
    path: PathBuf,
}

impl StateDir {
    /// The state directory (where listen.port and ports.txt go): created mode 0755 when
    /// missing, then refused unless it is a real directory (not a symlink) owned by this
    /// process's effective user and writable by no one else. Anyone who could write
    /// there could plant a name the daemon is about to create (`/var/tmp` is world
    /// writable, so another user can create /var/tmp/daqportmgr before the daemon does).
    pub fn open_private(dir: &Path) -> Result<StateDir> {
        create_dir(dir)?;
        let refuse = |why: String| {
            Error::new(
                libc::EPERM,
                format!(
                    "refusing to use state directory {}: {why}; it must be a directory owned by uid {} and \
                     writable only by its owner (remove it, or chown/chmod it, or choose another with -portfile)",
                    dir.display(),
                    geteuid()
                ),
            )
        };
        let before = lstat(dir).map_err(|e| Error::sys(e, format!("cannot examine {}", dir.display())))?;
        if is_kind(&before, SFlag::S_IFLNK) {
            return Err(refuse("it is a symbolic link".into()));
        }
        if !is_kind(&before, SFlag::S_IFDIR) {
            return Err(refuse("it is not a directory".into()));
        }
        if before.st_uid != geteuid().as_raw() {
            return Err(refuse(format!("it is owned by uid {}", before.st_uid)));
        }
        if before.st_mode & 0o022 != 0 {
            return Err(refuse(format!("its mode {:04o} lets others write in it", before.st_mode & 0o7777)));
        }
        let opened = StateDir::open_dir(dir, OFlag::O_NOFOLLOW)?;
        // The path checked must be the directory opened (not one swapped in between).
        let after =
            fstat(opened.dir.as_fd()).map_err(|e| Error::sys(e, format!("cannot examine {}", dir.display())))?;
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
            return Err(refuse("it changed while being checked".into()));
        }
        Ok(opened)
    }

    /// The pid file's directory: created when missing, but not required to be private
    /// (a pid file in a shared directory is the user's choice); the pid file itself is
    /// still opened without following symlinks and checked (see [`InstanceLock`]).
    pub fn open_shared(dir: &Path) -> Result<StateDir> {
        create_dir(dir)?;
        StateDir::open_dir(dir, OFlag::empty())
    }

    fn open_dir(dir: &Path, extra: OFlag) -> Result<StateDir> {
        let fd = openat(AT_FDCWD, dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra, Mode::empty())
            .map_err(|e| Error::sys(e, format!("cannot open directory {}", dir.display())))?;
        Ok(StateDir { dir: File::from(fd), path: dir.to_path_buf() })
    }

    pub fn try_clone(&self) -> Result<StateDir> {
        let dir = self.dir.try_clone().map_err(|e| Error::io(&e, format!("cannot open {}", self.path.display())))?;
        Ok(StateDir { dir, path: self.path.clone() })
    }

    fn show(&self, name: &OsStr) -> String {
        self.path.join(name).display().to_string()
    }

    /// Opens `name` in the directory, never through a symlink.
    fn open(&self, name: &OsStr, flags: OFlag) -> nix::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(self.dir.as_fd(), name, flags, Mode::from_bits_truncate(FILE_MODE)).map(File::from)
    }

    /// A new, empty file at `name` that nothing else can have opened or planted: a stale
    /// entry (a left-over temporary file, or a symlink) is removed first, and `O_EXCL`
    /// makes the creation fail rather than reuse whatever appears in between.
    fn create_new(&self, name: &OsStr) -> Result<File> {
        self.remove(name);
        self.open(name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)
            .map_err(|e| Error::sys(e, format!("cannot create {}", self.show(name))))
    }

    /// Removes the entry `name` (a symlink itself, never its target); a missing one is fine.
    fn remove(&self, name: &OsStr) {
        let _ = unlinkat(self.dir.as_fd(), name, UnlinkatFlags::NoRemoveDir);
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> nix::Result<()> {
        renameat(self.dir.as_fd(), from, self.dir.as_fd(), to)
    }

    /// Replaces `name` with `contents` in one step (write a new temporary file, rename it
    /// over), so a reader never sees a half-written file.
    pub fn write_atomic(&self, name: &OsStr, contents: &[u8]) -> Result<()> {
        let mut tmp = name.to_os_string();
        tmp.push(".tmp");
        let context = || format!("cannot write {}", self.show(name));
        let result = self.create_new(&tmp).and_then(|mut file| {
            file.write_all(contents).map_err(|e| Error::io(&e, context()))?;
            self.rename(&tmp, name).map_err(|e| Error::sys(e, context()))
        });
        if result.is_err() {
            self.remove(&tmp);
        }
        result
    }
}

/// A file replaced whole on every change, by swapping in a rewritten spare copy.
///
/// Both copies stay open: after each exchange the roles of the two descriptors swap, so
/// an update is one `pwrite`, sometimes an `ftruncate`, and one `renameat2`.
#[derive(Debug)]
pub struct SwapFile {
    dir: StateDir,
    name: OsString,
    spare_name: OsString,
    /// The copy that is not published (at `spare_name`), and the length of its contents.
    spare: (File, u64),
    /// The published copy (at `name`), once there is one.
    published: Option<(File, u64)>,
    /// Cleared when the file system cannot exchange names (then write and rename).
    exchange: bool,
}

impl SwapFile {
    /// The file `name` in `dir`; the spare copy is `.<name>.swap` in the same directory
    /// (a rename cannot cross file systems).
    pub fn new(dir: StateDir, name: &str) -> Result<SwapFile> {
        let spare_name = OsString::from(format!(".{name}.swap"));
        let spare = dir.create_new(&spare_name)?;
        Ok(SwapFile { dir, name: name.into(), spare_name, spare: (spare, 0), published: None, exchange: true })
    }

    /// Makes `contents` the file's contents in one step.
    pub fn replace(&mut self, contents: &[u8]) -> Result<()> {
        if !self.exchange {
            return self.dir.write_atomic(&self.name, contents);
        }
        self.fill_spare(contents)
            .map_err(|e| Error::io(&e, format!("cannot write {}", self.dir.show(&self.spare_name))))?;
        let dir = self.dir.dir.as_fd();
        match renameat2(dir, self.spare_name.as_os_str(), dir, self.name.as_os_str(), RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => {}
            // No file yet to exchange with: the spare simply becomes it.
            Err(Errno::ENOENT) => {
                self.dir
                    .rename(&self.spare_name, &self.name)
                    .map_err(|e| Error::sys(e, format!("cannot write {}", self.dir.show(&self.name))))?;
                let fresh = self.dir.create_new(&self.spare_name)?;
                self.published = Some(std::mem::replace(&mut self.spare, (fresh, 0)));
                return Ok(());
            }
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                self.exchange = false;
                self.dir.remove(&self.spare_name);
                return self.dir.write_atomic(&self.name, contents);
            }
            Err(e) => return Err(Error::sys(e, format!("cannot replace {}", self.dir.show(&self.name)))),
        }
        match self.published.as_mut() {
            Some(published) => std::mem::swap(&mut self.spare, published),
            // Exchanged with an entry left by an earlier run (a file, or anything planted
            // there, a symlink included): ours is published now, and the old entry, now
            // at the spare name, is replaced by a fresh file of ours, never written through.
            None => {
                let fresh = self.dir.create_new(&self.spare_name)?;
                self.published = Some(std::mem::replace(&mut self.spare, (fresh, 0)));
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
        self.dir.remove(&self.spare_name);
    }
}

/// The locks that mark this daemon as the owner of its files; released when dropped
/// (and by the kernel if the daemon dies).
#[derive(Debug)]
pub struct InstanceLock {
    pid_file: Flock<File>,
    pid_dir: StateDir,
    pid_name: OsString,
    _state_dir: Flock<File>,
}

impl InstanceLock {
    /// Locks the state directory and the pid file, creating the pid file if needed but
    /// modifying neither; fails with `EBUSY` when another daemon holds them.
    pub fn acquire(pid_path: &Path, state_dir: &StateDir) -> Result<Self> {
        let dir = state_dir
            .dir
            .try_clone()
            .map_err(|e| Error::io(&e, format!("cannot open {}", state_dir.path.display())))?;
        let state_lock = lock(dir, &state_dir.path)?;
        let pid_dir = StateDir::open_shared(dir_of(pid_path))?;
        let pid_name = name_of(pid_path)?;
        // No truncation here: the file may be the running daemon's.
        let pid = pid_dir.open(&pid_name, OFlag::O_RDWR | OFlag::O_CREAT).map_err(|e| {
            Error::sys(e, format!("cannot open pid file {} (a symbolic link is refused)", pid_path.display()))
        })?;
        // Truncated and rewritten below: it must be a file of ours and no other name's
        // (a hard link planted in a shared directory would make us truncate its target).
        let stat = fstat(pid.as_fd()).map_err(|e| Error::sys(e, format!("cannot examine {}", pid_path.display())))?;
        if !is_kind(&stat, SFlag::S_IFREG) || stat.st_uid != geteuid().as_raw() || stat.st_nlink != 1 {
            return Err(Error::new(
                libc::EPERM,
                format!(
                    "refusing to use pid file {}: it must be a regular file owned by uid {} with no other links",
                    pid_path.display(),
                    geteuid()
                ),
            ));
        }
        let pid_lock = lock(pid, pid_path)?;
        Ok(InstanceLock { pid_file: pid_lock, pid_dir, pid_name, _state_dir: state_lock })
    }

    /// Writes this process's pid into the locked pid file.
    pub fn write_pid(&mut self) -> Result<()> {
        let context = || format!("cannot write pid file {}", self.pid_dir.show(&self.pid_name));
        self.pid_file.set_len(0).map_err(|e| Error::io(&e, context()))?;
        let text = format!("{}\n", std::process::id());
        (&*self.pid_file).write_all(text.as_bytes()).map_err(|e| Error::io(&e, context()))
    }

    /// Removes the pid file (on a clean exit), while the lock is still held.
    pub fn remove_pid_file(&self) {
        self.pid_dir.remove(&self.pid_name);
    }
}

/// The state directory of a port file, checked and opened ([`StateDir::open_private`]).
pub fn state_dir_of(port_file: &Path) -> Result<(StateDir, OsString)> {
    Ok((StateDir::open_private(dir_of(port_file))?, name_of(port_file)?))
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
    use std::fs;

    #[test]
    fn second_lock_is_refused_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("daqflow-statefiles-{}", std::process::id()));
        let pid = dir.join("pid");
        let port = dir.join("listen.port");
        let (state, name) = state_dir_of(&port).unwrap();
        let mut first = InstanceLock::acquire(&pid, &state).unwrap();
        first.write_pid().unwrap();
        let before = fs::read(&pid).unwrap();
        let (state2, _) = state_dir_of(&port).unwrap();
        let err = InstanceLock::acquire(&pid, &state2).unwrap_err();
        assert_eq!(err.errno(), libc::EBUSY);
        assert_eq!(fs::read(&pid).unwrap(), before);
        state.write_atomic(&name, b"30000\n").unwrap();
        assert_eq!(fs::read(&port).unwrap(), b"30000\n");
        first.remove_pid_file();
        drop(first);
        assert!(!pid.exists());
        InstanceLock::acquire(&pid, &state2).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn swap_file_always_holds_the_latest_contents() {
        let dir = std::env::temp_dir().join(format!("daqflow-swapfile-{}", std::process::id()));
        let (state, _) = state_dir_of(&dir.join("x")).unwrap();
        let path = dir.join("ports.txt");
        fs::write(&path, b"left by an earlier run, longer than anything below\n").unwrap();
        let mut file = SwapFile::new(state, "ports.txt").unwrap();
        for contents in [&b"1\ta\tu\n2\tb\tu\n"[..], b"", b"3\tlonger name\tuser\n", b"4\tx\ty\n", b"5\ty\tz\n"] {
            file.replace(contents).unwrap();
            assert_eq!(fs::read(&path).unwrap(), contents);
        }
        file.remove_spare();
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["ports.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn planted_symlinks_are_replaced_not_followed() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("daqflow-planted-{}", std::process::id()));
        let victim = std::env::temp_dir().join(format!("daqflow-planted-victim-{}", std::process::id()));
        fs::write(&victim, b"precious\n").unwrap();
        fs::create_dir_all(&dir).unwrap();
        for name in [".ports.txt.swap", "ports.txt", "listen.port.tmp", "listen.port"] {
            symlink(&victim, dir.join(name)).unwrap();
        }
        let (state, name) = state_dir_of(&dir.join("listen.port")).unwrap();
        let mut file = SwapFile::new(state.try_clone().unwrap(), "ports.txt").unwrap();
        file.replace(b"1\ta\tu\n").unwrap();
        file.replace(b"2\tb\tu\n").unwrap();
        state.write_atomic(&name, b"30000\n").unwrap();
        file.remove_spare();
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
        assert_eq!(fs::read(dir.join("ports.txt")).unwrap(), b"2\tb\tu\n");
        assert!(fs::symlink_metadata(dir.join("ports.txt")).unwrap().file_type().is_file());
        assert!(fs::symlink_metadata(dir.join("listen.port")).unwrap().file_type().is_file());
        // A symlink as the pid file is refused, not followed.
        symlink(&victim, dir.join("pid")).unwrap();
        assert!(InstanceLock::acquire(&dir.join("pid"), &state).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(&victim).unwrap();
    }

    #[test]
    fn shared_or_foreign_directories_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("daqflow-shared-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = state_dir_of(&dir.join("listen.port")).unwrap_err();
        assert!(err.message().contains("lets others write"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.with_extension("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = state_dir_of(&link.join("listen.port")).unwrap_err();
        // Opening through the symlink's path makes the link the directory checked.
        assert!(state_dir_of(&dir.join("listen.port")).is_ok());
        assert!(err.message().contains("symbolic link"), "{err}");
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
