//! An open, mapped and validated ring: typed access to its client records and wake-up
//! words. Geometry is read from the ring's own header once, at attach, and every
//! pointer read back from a record is checked against it before use.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::layout::{self, Geometry};
use super::mem::Mapping;
use super::shm::{LOCK_WAIT, RingFile, RingLock};
use super::signal::{DataSignal, SpaceRequest};
use super::span::Span;
use crate::error::{Error, Result};

pub const FREE: i32 = -1;
pub const JOINING: i32 = 0;

pub struct Shared {
    pub file: RingFile,
    pub map: Mapping,
    pub geo: Geometry,
}

/// One 16-byte client record.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub pos: &'a AtomicU64,
    pub pid: &'a AtomicI32,
    /// The padding word: daqflow's wake-up state (see `signal`).
    pub pad: &'a AtomicU32,
}

impl Shared {
    /// Opens and maps ring `name`, validating its header under NSCLDAQ's lock, so that a
    /// ring being created or formatted is never seen half-written.
    pub fn open(name: &str, writable: bool) -> Result<Shared> {
        let file = if writable { RingFile::open(name, true)? } else { RingFile::open_best(name)? };
        let (map, geo) = if file.writable {
            let _lock = file.lock(file.legacy_lock_len(), LOCK_WAIT)?;
            file.map_ring()?
        } else {
            file.map_ring()?
        };
        Ok(Shared { file, map, geo })
    }

    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The name still names this object: it was neither removed nor replaced by a new
    /// ring of the same name. Compared with the open file, not with the name at some
    /// earlier moment, which may already have changed.
    pub fn still_named(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let named =
            std::fs::metadata(format!("{}/{}", super::shm::SHM_DIR, self.name())).ok().map(|m| (m.dev(), m.ino()));
        named.is_some() && named == self.file.identity().ok()
    }

    pub fn lock(&self) -> Result<RingLock<'_>> {
        self.lock_for(LOCK_WAIT)
    }

    pub fn lock_for(&self, wait: Duration) -> Result<RingLock<'_>> {
        self.file.lock(self.geo.lock_len(), wait)
    }

    #[inline]
    fn record_at(&self, off: u64) -> Record<'_> {
        Record {
            pos: self.map.u64_at(off),
            pid: self.map.i32_at(off + 8),
            pad: self.map.u32_at(off + layout::RECORD_PAD),
        }
    }

    #[inline]
    pub fn producer(&self) -> Record<'_> {
        self.record_at(layout::PRODUCER_RECORD)
    }

    #[inline]
    pub fn consumer(&self, slot: u32) -> Record<'_> {
        self.record_at(self.geo.consumer_record(slot))
    }

    pub fn consumers(&self) -> impl Iterator<Item = (u32, Record<'_>)> {
        (0..self.geo.max_consumers).map(|slot| (slot, self.consumer(slot)))
    }

    /// Consumers waiting for data sleep in the producer record's word.
    #[inline]
    pub fn data_signal(&self) -> DataSignal<'_> {
        DataSignal(self.producer().pad)
    }

    /// The producer waiting for space asks a consumer, in its record's word.
    #[inline]
    pub fn space_request(&self, slot: u32) -> SpaceRequest<'_> {
        SpaceRequest(self.consumer(slot).pad)
    }

    /// A position read from a record, checked to lie in the data area.
    #[inline]
    pub fn checked_pos(&self, record: Record<'_>, whose: impl FnOnce() -> String) -> Result<u64> {
        let pos = record.pos.load(Ordering::SeqCst);
        if self.geo.contains(pos) {
            Ok(pos)
        } else {
            self.truncation()?;
            Err(Error::new(
                libc::EBADMSG,
                format!(
                    "ring {} is corrupt: the {} pointer {pos} is outside the data area [{}, {}]",
                    self.name(),
                    whose(),
                    self.geo.data_offset,
                    self.geo.top
                ),
            ))
        }
    }

    #[inline]
    pub fn put_pos(&self) -> Result<u64> {
        self.checked_pos(self.producer(), || "put".to_string())
    }

    #[inline]
    pub fn get_pos(&self, slot: u32) -> Result<u64> {
        self.checked_pos(self.consumer(slot), || format!("consumer {slot} get"))
    }

    /// An error once an access faulted on a part of the object that was truncated away
    /// (the mapping then reads as zeros): call after reading ring memory, before
    /// trusting what was read.
    #[inline]
    pub fn intact(&self) -> Result<()> {
        if self.map.struck() { Err(self.struck()) } else { Ok(()) }
    }

    /// `intact`, for a call that just read or wrote the `n` bytes at `pos`. A truncation
    /// faults only on the pages past the new end; the rest of the page it ends in reads
    /// as zeros without a fault, and what a producer writes there is seen by no one
    /// once its consumers fail. So the last page of the mapping is touched, which faults
    /// after any truncation but one inside that page, and the size is checked when the
    /// bytes reach into that page (once a turn of the ring, for big rings).
    #[inline]
    pub fn intact_through(&self, pos: u64, n: u64) -> Result<()> {
        // The touch comes after the reads it vouches for: zeros from a truncation are
        // written after the pages past it are unmapped.
        std::sync::atomic::fence(Ordering::Acquire);
        self.map.touch_last_page();
        // Positions are offsets in the mapping; a range that wraps reaches the top,
        // which is in the last page. One branch for both conditions: this runs on
        // every put and get.
        if self.map.struck() | (n > 0 && pos + n > self.map.last_page()) {
            return self.truncation();
        }
        Ok(())
    }

    /// For the paths that found something wrong in the ring (a freed slot, a wild
    /// pointer): an error if the reason is that the object was truncated, which also
    /// zeroes the rest of a page it ends in without any fault.
    #[cold]
    pub fn truncation(&self) -> Result<()> {
        self.intact()?;
        match self.file.size() {
            Ok(size) if size < self.geo.map_len => Err(self.truncated()),
            _ => Ok(()),
        }
    }

    /// Why the mapping faulted. Truncation is the usual reason; but the object is
    /// sparse, and a page touched for the first time when /dev/shm is full faults the
    /// same way, with the object as long as ever (as it also is when it was truncated
    /// and grown again since, which the handler cannot tell apart).
    #[cold]
    fn struck(&self) -> Error {
        match self.file.size() {
            Ok(size) if size >= self.geo.map_len => Error::new(
                libc::ENOSPC,
                format!(
                    "ring {}: a page of it could not be had though the object is still {size} bytes (/dev/shm is full: a ring's pages are made as they are first used; or the object was truncated and grown again); this handle cannot use it any more",
                    self.name()
                ),
            ),
            _ => self.truncated(),
        }
    }

    #[cold]
    fn truncated(&self) -> Error {
        Error::new(
            libc::EBADMSG,
            format!(
                "ring {} was truncated by another process while in use (it is {} bytes now, not {}); its contents are lost",
                self.name(),
                self.file.size().map_or_else(|_| "of unknown size".to_string(), |s| s.to_string()),
                self.geo.map_len
            ),
        )
    }

    /// The `n` bytes at `pos` as one or two spans of ring memory (two across the top),
    /// for the zero-copy calls.
    pub fn lend(&self, pos: u64, n: u64) -> [Span; 2] {
        self.geo.spans(pos, n).map(|(off, len)| Span { ptr: self.map.bytes(off, len), len: len as usize })
    }

    /// Writes a freshly formatted header and free client records.
    pub fn format(map: &Mapping, geo: &Geometry) {
        let free = |off: u64| {
            map.u64_at(off).store(geo.data_offset, Ordering::SeqCst);
            map.i32_at(off + 8).store(FREE, Ordering::SeqCst);
            map.u32_at(off + layout::RECORD_PAD).store(0, Ordering::SeqCst);
        };
        free(layout::PRODUCER_RECORD);
        for slot in 0..geo.max_consumers {
            free(geo.consumer_record(slot));
        }
        map.write(0, &geo.encode());
    }
}
