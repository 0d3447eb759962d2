//! Opening, creating and unlinking a ring's POSIX shared-memory object (`/dev/shm/NAME`),
//! and NSCLDAQ's lock on it.

use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

use super::layout::Geometry;
use super::mem::Mapping;
use crate::error::{Error, Result};

pub const SHM_DIR: &str = "/dev/shm";

/// How long a lock request waits for the holder before giving up. The legacy code
/// waits forever, so a stuck holder hung everyone; the lock is only ever held for a
/// few system calls, so seconds mean something is wrong.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

pub struct RingFile {
    pub name: String,
    pub file: File,
    pub writable: bool,
}

fn open_error(err: Errno, name: &str, doing: &str) -> Error {
    match err {
        Errno::ENOENT => Error::new(libc::ENOENT, format!("no ring named {name} (no /dev/shm/{name})")),
        Errno::EACCES | Errno::EPERM => {
            Error::new(libc::EACCES, format!("cannot {doing} ring {name}: permission denied"))
        }
        other => Error::sys(other, format!("cannot {doing} ring {name}")),
    }
}

impl RingFile {
    pub fn open(name: &str, writable: bool) -> Result<RingFile> {
        // O_NONBLOCK: a FIFO planted under a ring's name must not block the open.
        let flags = if writable { OFlag::O_RDWR } else { OFlag::O_RDONLY } | OFlag::O_NONBLOCK;
        let fd =
            shm_open(format!("/{name}").as_str(), flags, Mode::empty()).map_err(|e| open_error(e, name, "open"))?;
        let file = File::from(fd);
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !regular {
            return Err(Error::new(libc::EBADMSG, format!("/dev/shm/{name} is not a regular file, so not a ring")));
        }
        Ok(RingFile { name: name.to_string(), file, writable })
    }

    /// (device, inode): which object this is, whatever name it is reached by.
    pub fn identity(&self) -> Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = self.file.metadata().map_err(|e| Error::io(&e, format!("cannot stat ring {}", self.name)))?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Opens for writing when allowed, else read-only (enough to look, not to change).
    pub fn open_best(name: &str) -> Result<RingFile> {
        match RingFile::open(name, true) {
            Err(e) if e.errno() == libc::EACCES => RingFile::open(name, false),
            other => other,
        }
    }

    /// Creates a new, empty object. Fails with EEXIST if the name is taken.
    pub fn create(name: &str, mode: u32) -> Result<RingFile> {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = shm_open(format!("/{name}").as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| match e {
            Errno::EEXIST => {
                let what = if exists_as_ring(name) { "a ring" } else { "a shared-memory object that is not a ring" };
                Error::new(libc::EEXIST, format!("cannot create ring {name}: {what} of that name already exists"))
            }
            other => open_error(other, name, "create"),
        })?;
        let file = File::from(fd);
        // fchmod, not the umask: the mode asked for is the mode the ring gets, and the
        // process-wide umask is never touched.
        if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode)) {
            let _ = RingFile::unlink(name);
            return Err(Error::io(&e, format!("cannot set the mode of ring {name}")));
        }
        Ok(RingFile { name: name.to_string(), file, writable: true })
    }

    pub fn unlink(name: &str) -> Result<()> {
        shm_unlink(format!("/{name}").as_str()).map_err(|e| match e {
            Errno::ENOENT => Error::new(libc::ENOENT, format!("no ring named {name}")),
            Errno::EACCES | Errno::EPERM => {
                Error::new(libc::EPERM, format!("not allowed to remove ring {name}: it belongs to another user"))
            }
            other => Error::sys(other, format!("cannot remove ring {name}")),
        })
    }

    pub fn size(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| Error::io(&e, format!("cannot stat ring {}", self.name)))?.len())
    }

    pub fn set_size(&self, size: u64) -> Result<()> {
        self.file.set_len(size).map_err(|e| Error::io(&e, format!("cannot size ring {} to {size} bytes", self.name)))
    }

    /// The 80-byte header read with pread, or None when the object is shorter.
    pub fn read_header(&self) -> Result<Option<[u8; 80]>> {
        let mut header = [0u8; 80];
        match self.file.read_exact_at(&mut header, 0) {
            Ok(()) => Ok(Some(header)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io(&e, format!("cannot read ring {}", self.name))),
        }
    }

    pub fn map(&self, len: u64) -> Result<Mapping> {
        Mapping::new(&self.file, len, self.writable, &self.name)
    }

    /// Maps the whole object and validates its header.
    pub fn map_ring(&self) -> Result<(Mapping, Geometry)> {
        let size = self.size()?;
        let not_ring =
            || Error::new(libc::EBADMSG, format!("/dev/shm/{} is not a ring (no NSCLRing header)", self.name));
        if size < 80 {
            return Err(not_ring());
        }
        let map = self.map(size)?;
        let header = map.header();
        let geometry =
            Geometry::parse(&header, size).map_err(|e| corrupt(&self.name, &header, size, e))?.ok_or_else(not_ring)?;
        Ok((map, geometry))
    }

    /// The byte range NSCLDAQ locks: header and records, per the header when it is
    /// readable. Any range starting at 0 conflicts with a legacy holder's.
    pub fn legacy_lock_len(&self) -> u64 {
        match self.read_header().ok().flatten().map(|h| Geometry::parse(&h, u64::MAX)) {
            Some(Ok(Some(g))) => g.lock_len(),
            _ => 80,
        }
    }

    /// Takes NSCLDAQ's write lock on bytes [0, len), waiting at most `wait`. An OFD
    /// lock: it conflicts with the classic fcntl locks of C++ peers, belongs to this
    /// open file rather than the process, and the kernel drops it if we die.
    pub fn lock(&self, len: u64, wait: Duration) -> Result<RingLock<'_>> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_micros(50);
        loop {
            match set_lock(&self.file, libc::F_WRLCK, len) {
                Ok(()) => return Ok(RingLock { file: &self.file, len }),
                Err(Errno::EAGAIN | Errno::EACCES | Errno::EINTR) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Err(Errno::EAGAIN | Errno::EACCES) => {
                    return Err(Error::new(
                        libc::ETIMEDOUT,
                        format!("ring {} stayed locked by another process for {} ms", self.name, wait.as_millis()),
                    ));
                }
                Err(Errno::EBADF) => {
                    return Err(Error::new(libc::EACCES, format!("ring {} is read-only to this user", self.name)));
                }
                Err(other) => return Err(Error::sys(other, format!("cannot lock ring {}", self.name))),
            }
        }
    }
}

fn set_lock(file: &File, kind: i32, len: u64) -> std::result::Result<(), Errno> {
    let lock = libc::flock {
        l_type: kind as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: len.min(i64::MAX as u64) as libc::off_t,
        // Open file description locks take no pid (the kernel wants 0).
        l_pid: 0,
    };
    fcntl(file, FcntlArg::F_OFD_SETLK(&lock)).map(|_| ())
}

/// Held lock; released on drop.
pub struct RingLock<'a> {
    file: &'a File,
    len: u64,
}

impl Drop for RingLock<'_> {
    fn drop(&mut self) {
        // Unlocking cannot fail on a valid descriptor; closing it would release it anyway.
        let _ = set_lock(self.file, libc::F_UNLCK, self.len);
    }
}

/// Whether /dev/shm/NAME starts with the NSCLRing magic (a ring, maybe corrupt).
pub fn exists_as_ring(name: &str) -> bool {
    match RingFile::open(name, false) {
        Ok(f) => has_magic(&f.file),
        Err(_) => false,
    }
}

pub fn has_magic(file: &File) -> bool {
    let mut magic = [0u8; 9];
    file.read_exact_at(&mut magic, 0).is_ok() && &magic == super::layout::MAGIC
}

/// A refused header's error: what is wrong, the cause when it is known, and the cure.
/// FRIB's `nscldaq_ringbuffer` creates rings with top offset = the object's size
/// (NSCLDAQ: size - 1), which no NSCLDAQ or daqflow client can use as it is.
fn corrupt(name: &str, header: &[u8; 80], size: u64, e: Error) -> Error {
    let mut top = [0u8; 8];
    top.copy_from_slice(&header[72..80]);
    let cause = if u64::from_le_bytes(top) == size {
        " (a top offset equal to the object's size is what FRIB's nscldaq_ringbuffer create writes; NSCLDAQ writes size - 1)"
    } else {
        ""
    };
    Error::new(
        e.errno(),
        format!(
            "ring {name} is corrupt: {}{cause}; `ringbuffer format {name}` rewrites its header (unread data is lost)",
            e.message()
        ),
    )
}
