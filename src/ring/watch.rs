//! A read-only look at a ring's pointers, for monitors (`ringbuffer top`) that sample
//! them repeatedly to derive rates. Nothing is locked, reaped or written: a watcher
//! never disturbs the clients it watches, and may watch rings it cannot write.

use std::sync::atomic::Ordering;

use super::layout::Geometry;
use super::name::validate;
use super::shared::{FREE, Shared};
use super::shm::RingFile;
use crate::error::{Error, Result};

/// One ring mapped read-only.
pub struct Watch {
    ring: Shared,
}

/// A consumer slot in use, with its get pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerPosition {
    pub slot: u32,
    /// 0 while the consumer is joining.
    pub pid: i32,
    /// Offset of the get pointer from the start of the data area.
    pub get: u64,
}

/// The pointers of a ring at one moment. Positions are offsets into the data area, so
/// the distance one moved between two samples is `(new - old) mod data_bytes` (which
/// cannot tell how many whole turns of the ring were made in between).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions {
    pub data_bytes: u64,
    /// -1 when no producer is attached.
    pub producer_pid: i32,
    pub put: u64,
    /// Every slot not free, in slot order.
    pub consumers: Vec<ConsumerPosition>,
}

impl Positions {
    /// Bytes a consumer at `get` has yet to read.
    pub fn backlog(&self, get: u64) -> u64 {
        if self.put >= get { self.put - get } else { self.data_bytes - get + self.put }
    }

    /// How far a pointer moved forward from `old` to `new`, modulo one turn.
    pub fn advance(&self, old: u64, new: u64) -> u64 {
        if new >= old { new - old } else { self.data_bytes - old + new }
    }
}

impl Watch {
    pub fn open(name: &str) -> Result<Watch> {
        validate(name)?;
        let file = RingFile::open(name, false)?;
        let (map, geo) = file.map_ring()?;
        Ok(Watch { ring: Shared { file, map, geo } })
    }

    pub fn name(&self) -> &str {
        self.ring.name()
    }

    /// Whether this is still the ring of that name, with the geometry it had when
    /// opened: false after a delete (and maybe re-create) or a format, when the watcher
    /// should open the ring afresh.
    pub fn is_current(&self) -> bool {
        if self.intact().is_err() {
            return false;
        }
        self.ring.still_named()
            && Geometry::parse(&self.ring.map.header(), self.ring.geo.map_len).ok().flatten() == Some(self.ring.geo)
    }

    /// Whether the object is still as long as the mapping. Anyone who may write a ring
    /// (mode 0666 by default: anyone) can truncate it; a read that strikes the missing
    /// part is survived (see `truncation`) and reported after it, but a shrunk ring is
    /// reported even when the few pages a sample reads are still there.
    fn intact(&self) -> Result<()> {
        let size = self.ring.file.size()?;
        if size < self.ring.geo.map_len {
            return Err(Error::new(
                libc::EBADMSG,
                format!("ring {} shrank from {} to {size} bytes while watched", self.name(), self.ring.geo.map_len),
            ));
        }
        Ok(())
    }

    /// The pointers now. Each is checked against the geometry; a corrupt one is an error.
    pub fn sample(&self) -> Result<Positions> {
        self.intact()?;
        let base = self.ring.geo.data_offset;
        let put = self.ring.put_pos()? - base;
        let mut consumers = Vec::new();
        for (slot, record) in self.ring.consumers() {
            let pid = record.pid.load(Ordering::Relaxed);
            if pid != FREE {
                consumers.push(ConsumerPosition { slot, pid, get: self.ring.get_pos(slot)? - base });
            }
        }
        self.ring.intact()?;
        Ok(Positions {
            data_bytes: self.ring.geo.data_bytes(),
            producer_pid: self.ring.producer().pid.load(Ordering::Relaxed),
            put,
            consumers,
        })
    }
}
