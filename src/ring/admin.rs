//! Ring management: create, format, remove, exists, list, usage, forced disconnects.
//! None of it needs a daemon: rings are found by reading /dev/shm.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{self, DEFAULT_DATA_BYTES, DEFAULT_MAX_CONSUMERS, Geometry};
use super::mem::{Mapping, page_size};
use super::name::validate;
use super::shared::{FREE, Shared};
use super::shm::{self, LOCK_WAIT, RingFile, SHM_DIR};
use super::slots;
use crate::error::{Error, Result};

/// Mode of a new ring unless the creator asks for another: world read-write, as
/// NSCLDAQ makes them (its tests check it), so any user's programs can attach.
pub const DEFAULT_MODE: u32 = 0o666;
pub use super::layout::MAX_CONSUMERS_LIMIT;

/// What `create` is asked for; zeros mean the NSCLDAQ defaults.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    pub data_bytes: u64,
    pub max_consumers: u32,
    pub mode: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { data_bytes: DEFAULT_DATA_BYTES, max_consumers: DEFAULT_MAX_CONSUMERS, mode: DEFAULT_MODE }
    }
}

fn check_max_consumers(n: u32) -> Result<u32> {
    match n {
        0 => Ok(DEFAULT_MAX_CONSUMERS),
        n if n > MAX_CONSUMERS_LIMIT => {
            Err(Error::new(libc::EINVAL, format!("{n} consumers is more than the limit of {MAX_CONSUMERS_LIMIT}")))
        }
        n => Ok(n),
    }
}

/// Refuses a ring larger than the free space of /dev/shm. tmpfs objects are sparse, so
/// sizing one beyond it succeeds, and the producer's write that first touches a page
/// there is no room for then fails (ENOSPC, through the SIGBUS handler of
/// `truncation`). (Rings already there but not yet filled are not counted: their pages
/// are not taken yet, so this is a check, not a promise.)
fn check_room(name: &str, size: u64) -> Result<()> {
    let Ok(fs) = nix::sys::statvfs::statvfs(SHM_DIR) else {
        return Ok(()); // nothing to compare with: the create itself reports what fails
    };
    let free = fs.blocks_available().saturating_mul(fs.fragment_size());
    if size > free {
        return Err(Error::new(
            libc::ENOSPC,
            format!("no room for a {size}-byte ring {name} in {SHM_DIR}: {free} bytes are free"),
        ));
    }
    Ok(())
}

/// Creates ring `name`: a new /dev/shm object of NSCLDAQ's size, formatted. On any
/// failure nothing is left behind.
pub fn create(name: &str, options: CreateOptions) -> Result<()> {
    validate(name)?;
    let data = if options.data_bytes == 0 { DEFAULT_DATA_BYTES } else { options.data_bytes };
    let n = check_max_consumers(options.max_consumers)?;
    if options.mode & !0o777 != 0 {
        return Err(Error::new(libc::EINVAL, format!("mode {:o} is not a permission mode", options.mode)));
    }
    let size = layout::object_size(data, n, page_size())
        .filter(|&s| s <= i64::MAX as u64)
        .ok_or_else(|| Error::new(libc::EINVAL, format!("a ring of {data} bytes is too large")))?;
    let geo = Geometry::for_format(size, n)?;
    check_room(name, size)?;
    let file = RingFile::create(name, options.mode)?;
    let made = (|| {
        let _lock = file.lock(geo.lock_len(), LOCK_WAIT)?;
        file.set_size(size).map_err(|e| {
            if e.errno() == libc::ENOSPC || e.errno() == libc::EFBIG {
                Error::new(e.errno(), format!("no room for a {size}-byte ring {name} in {SHM_DIR}: {}", e.message()))
            } else {
                e
            }
        })?;
        let map = file.map(size)?;
        Shared::format(&map, &geo);
        Ok(())
    })();
    // A ring master that is advertised but cannot be told fails the create.
    let made = made.and_then(|()| super::installed_hooks().map_or(Ok(()), |h| h.created(name)));
    if made.is_err() {
        let _ = RingFile::unlink(name);
    }
    made
}

/// Makes the shared-memory object `name` a ring with `max_consumers` (0: the default),
/// whatever it held: an existing ring (the data area grows or shrinks to match), a
/// corrupt one, or any object of sufficient size, as NSCLDAQ's format does (an explicit
/// administrator action). Everything is derived from the object's actual size, so a
/// ring FRIB's tools made (top offset = size, no page rounding) is repaired too. A ring
/// with a sane header, or FRIB's, is refused while live clients are attached.
pub fn format(name: &str, max_consumers: u32) -> Result<()> {
    validate(name)?;
    let n = check_max_consumers(max_consumers)?;
    let file = RingFile::open(name, true)?;
    let _lock = file.lock(file.legacy_lock_len(), LOCK_WAIT)?;
    let size = file.size()?;
    let geo = Geometry::for_format(size, n)
        .map_err(|e| Error::new(e.errno(), format!("cannot format ring {name}: {}", e.message())))?;
    let map = file.map(size)?;
    // A ring with a sane header is checked for live clients first; a corrupt one, or an
    // object that is no ring yet, is exactly what format is for.
    if let Some(old) = current_geometry(&map.header(), size) {
        refuse_if_attached(name, &map, &old)?;
    }
    Shared::format(&map, &geo);
    Ok(())
}

/// The geometry an object's header describes: a sane one, or the one FRIB's tools write
/// (top offset = the object's size, one past its last byte), whose clients are as live.
fn current_geometry(header: &[u8; 80], size: u64) -> Option<Geometry> {
    if let Ok(Some(geo)) = Geometry::parse(header, size) {
        return Some(geo);
    }
    // Bytes 72..80: the top offset (spec section 3).
    let mut frib = *header;
    if frib[72..80] != size.to_le_bytes() {
        return None;
    }
    frib[72..80].copy_from_slice(&size.checked_sub(1)?.to_le_bytes());
    Geometry::parse(&frib, size).ok().flatten()
}

fn refuse_if_attached(name: &str, map: &Mapping, geo: &Geometry) -> Result<()> {
    let live = |record: u64| {
        let pid = map.i32_at(record + 8).load(Ordering::SeqCst);
        pid > 0 && super::liveness::alive(pid)
    };
    let producer = live(layout::PRODUCER_RECORD);
    let consumers = (0..geo.max_consumers).filter(|&s| live(geo.consumer_record(s))).count();
    if producer || consumers > 0 {
        let producer = if producer { "a producer and " } else { "" };
        return Err(Error::new(
            libc::EBUSY,
            format!(
                "cannot format ring {name}: {producer}{consumers} consumers are attached; detach or disconnect them first"
            ),
        ));
    }
    Ok(())
}

/// Removes ring `name` (like `rm`: attached clients keep their mapping until they detach).
pub fn remove(name: &str) -> Result<()> {
    validate(name)?;
    let file = RingFile::open_best(name)?;
    // Before the lock: a legacy ring master reads the ring's slots when told.
    if let Some(hooks) = super::installed_hooks() {
        hooks.removing(name)?;
    }
    let _lock = if file.writable { Some(file.lock(file.legacy_lock_len(), LOCK_WAIT)?) } else { None };
    if !shm::has_magic(&file.file) {
        return Err(Error::new(
            libc::ENOENT,
            format!("cannot remove {name}: /dev/shm/{name} exists but is not a ring"),
        ));
    }
    RingFile::unlink(name)
}

/// Whether a ring called `name` exists (an object with NSCLDAQ's magic).
pub fn exists(name: &str) -> Result<bool> {
    validate(name)?;
    match RingFile::open(name, false) {
        Ok(file) => Ok(shm::has_magic(&file.file)),
        Err(e) if e.errno() == libc::ENOENT || e.errno() == libc::EBADMSG => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every ring on this host, sorted by name.
pub fn list() -> Result<Vec<String>> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|e| Error::io(&e, format!("cannot list {SHM_DIR}")))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        // O_NONBLOCK|O_NOFOLLOW: a stray FIFO or link in /dev/shm must not stall or fool us.
        let opened = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(entry.path());
        if is_file && opened.is_ok_and(|f| shm::has_magic(&f)) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// One attached consumer, as `usage` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerUsage {
    pub slot: u32,
    pub pid: i32,
    pub backlog: u64,
}

/// NSCLDAQ's usage figures for one ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub data_bytes: u64,
    pub put_space: u64,
    pub max_consumers: u32,
    pub producer_pid: i32,
    pub max_get: u64,
    pub min_get: u64,
    /// Every slot not free, in slot order.
    pub consumers: Vec<ConsumerUsage>,
}

/// Usage of ring `name`. Dead clients' slots are freed first when the ring is writable
/// to us and its lock is free; otherwise this is a read-only look.
pub fn usage(name: &str) -> Result<Usage> {
    validate(name)?;
    let ring = Shared::open(name, false)?;
    if ring.file.writable {
        if let Ok(lock) = ring.lock_for(Duration::from_millis(200)) {
            slots::reap_dead(&ring, &lock);
        }
    }
    usage_of(&ring)
}

/// [`usage`] read-only and without the ring's lock: for a daemon listing every ring,
/// which must neither wait on a ring whose lock is held (a joiner stuck at pid 0) nor
/// change anything. A ring being created at that very moment may fail its header check.
pub fn peek_usage(name: &str) -> Result<Usage> {
    validate(name)?;
    let file = RingFile::open(name, false)?;
    let (map, geo) = file.map_ring()?;
    usage_of(&Shared { file, map, geo })
}

/// Whether ring `name`'s producer is a daqflow client: its record carries the tag
/// daqflow's producers write, which NSCLDAQ's and FRIB's never do. False without one.
pub fn producer_is_daqflow(name: &str) -> Result<bool> {
    validate(name)?;
    let file = RingFile::open(name, false)?;
    let (map, geo) = file.map_ring()?;
    let ring = Shared { file, map, geo };
    let producer = ring.producer();
    Ok(super::signal::wakes(producer.pad, producer.pid.load(Ordering::SeqCst)))
}

fn usage_of(ring: &Shared) -> Result<Usage> {
    let geo = &ring.geo;
    let put = ring.put_pos()?;
    let mut consumers = Vec::new();
    for (slot, record) in ring.consumers() {
        let pid = record.pid.load(Ordering::SeqCst);
        if pid != FREE {
            let backlog = geo.backlog(put, ring.get_pos(slot)?);
            consumers.push(ConsumerUsage { slot, pid, backlog });
        }
    }
    let attached = consumers.iter().filter(|c| c.pid > 0).map(|c| c.backlog);
    let max_get = attached.clone().max().unwrap_or(0);
    let min_get = attached.min().unwrap_or(0);
    ring.intact()?;
    Ok(Usage {
        data_bytes: geo.data_bytes(),
        put_space: geo.capacity() - max_get,
        max_consumers: geo.max_consumers,
        producer_pid: ring.producer().pid.load(Ordering::SeqCst),
        max_get,
        min_get,
        consumers,
    })
}

/// Frees the producer slot whoever holds it (for a producer that died attached).
pub fn disconnect_producer(name: &str) -> Result<()> {
    validate(name)?;
    let ring = Shared::open(name, true)?;
    let _lock = ring.lock()?;
    slots::release_producer(&ring);
    Ok(())
}

/// Frees consumer slot `slot` whoever holds it.
pub fn disconnect_consumer(name: &str, slot: u32) -> Result<()> {
    validate(name)?;
    let ring = Shared::open(name, true)?;
    let n = ring.geo.max_consumers;
    if slot >= n {
        return Err(Error::new(
            libc::ERANGE,
            format!("cannot disconnect consumer {slot} of ring {name}: slots are 0..{}", n.saturating_sub(1)),
        ));
    }
    let _lock = ring.lock()?;
    slots::release_consumer(&ring, slot);
    Ok(())
}

/// What [`release_if_gone`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotCheck {
    Freed,
    /// The slot is free or held by another pid: left alone.
    NotHeld,
    /// `pid` still holds it and is still running: left alone.
    StillRunning,
}

/// Frees a slot (the producer's when `slot` is `None`) if `pid` still holds it and that
/// process is gone. For a ring master cleaning up after a client whose connection
/// closed: a slot re-taken by another process, or still used by a live one, is kept.
pub fn release_if_gone(name: &str, slot: Option<u32>, pid: i32) -> Result<SlotCheck> {
    validate(name)?;
    let ring = Shared::open(name, true)?;
    let record = match slot {
        None => ring.producer(),
        Some(slot) if slot < ring.geo.max_consumers => ring.consumer(slot),
        Some(slot) => {
            return Err(Error::new(libc::ERANGE, format!("ring {name} has no consumer slot {slot}")));
        }
    };
    let _lock = ring.lock()?;
    if pid <= 0 || record.pid.load(Ordering::SeqCst) != pid {
        return Ok(SlotCheck::NotHeld);
    }
    if super::liveness::alive(pid) {
        return Ok(SlotCheck::StillRunning);
    }
    slots::release(&ring, slot);
    Ok(SlotCheck::Freed)
}
