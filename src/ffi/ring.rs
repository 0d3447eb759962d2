//! C ABI for rings: argument checks over `crate::ring`, errors as negated errno.
//!
//! Safety, for every function here: pointer arguments are NULL or valid for the access
//! the header describes (names NUL-terminated; buffers of the length passed; handles
//! from ring_attach_* and not yet detached, used by one thread at a time).
#![allow(clippy::missing_safety_doc)] // the contract above and in daqflow.h covers them all

use std::ffi::{CString, c_char, c_int, c_void};
use std::time::Duration;

use super::{guard, guard_infallible, out_arg, str_arg};
use crate::error::{Error, Result};
use crate::ring::{self, Consumer, CreateOptions, Producer, Span};

/// Data bytes of a ring created with data_bytes = 0 (8 MiB, NSCLDAQ's default).
pub const RING_DEFAULT_DATA_BYTES: u64 = 8388608;
/// Consumer slots of a ring created with max_consumers = 0 (NSCLDAQ's default).
pub const RING_DEFAULT_MAX_CONSUMERS: u32 = 100;
/// Permissions of a ring made by ring_create: 0666, world read-write, like NSCLDAQ.
pub const RING_DEFAULT_MODE: u32 = 0o666;
/// The most consumer slots a ring may have (NSCLDAQ's create limit). A larger count
/// read from a ring or a ring master is corrupt or hostile: size nothing by it.
pub const RING_MAX_CONSUMERS: u32 = 1048576;
const _: () = assert!(RING_MAX_CONSUMERS == ring::MAX_CONSUMERS_LIMIT);

/// A producer or consumer attachment to one ring (opaque).
pub struct ring_client {
    side: Side,
    /// The ring attached to, for ring_client_name.
    name: CString,
}

enum Side {
    Producer(Producer),
    Consumer(Consumer),
}

/// A piece of ring memory lent by ring_reserve or ring_borrow. len may be 0.
#[repr(C)]
pub struct ring_span {
    pub data: *mut c_void,
    pub len: usize,
}

/// Usage of one ring, as NSCLDAQ reports it.
#[repr(C)]
pub struct ring_usage_info {
    /// Data area size.
    pub data_bytes: u64,
    /// What the producer can put now without blocking.
    pub put_space: u64,
    pub max_consumers: u32,
    /// -1: no producer.
    pub producer_pid: i32,
    /// Largest consumer backlog (0 with no consumer).
    pub max_get: u64,
    /// Smallest consumer backlog (0 with no consumer).
    pub min_get: u64,
    /// Consumer slots in use.
    pub n_consumers: u32,
}

/// One consumer slot in use. pid 0: a consumer in the middle of attaching.
#[repr(C)]
pub struct ring_consumer_info {
    pub pid: i32,
    pub slot: u32,
    pub backlog: u64,
}

fn timeout(ms: c_int) -> Result<Option<Duration>> {
    match ms {
        -1 => Ok(None),
        ms if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
        ms => Err(Error::new(libc::EINVAL, format!("timeout {ms} ms: use -1 (forever), 0 (never block) or more"))),
    }
}

/// The producer behind a handle.
///
/// # Safety
/// `client` is NULL or a handle from ring_attach_* not yet detached, which no other thread
/// uses while the result lives.
unsafe fn as_producer<'a>(client: *mut ring_client) -> Result<&'a mut Producer> {
    // SAFETY: per our contract, NULL (as_mut says None) or a live, unshared handle.
    match unsafe { client.as_mut() } {
        Some(ring_client { side: Side::Producer(p), .. }) => Ok(p),
        Some(_) => Err(Error::new(libc::EINVAL, "this call needs a producer, and the handle is a consumer")),
        None => Err(Error::new(libc::EINVAL, "ring client is NULL")),
    }
}

/// The consumer behind a handle.
///
/// # Safety
/// As for [`as_producer`].
unsafe fn as_consumer<'a>(client: *mut ring_client) -> Result<&'a mut Consumer> {
    // SAFETY: as for `as_producer`.
    match unsafe { client.as_mut() } {
        Some(ring_client { side: Side::Consumer(c), .. }) => Ok(c),
        Some(_) => Err(Error::new(libc::EINVAL, "this call needs a consumer, and the handle is a producer")),
        None => Err(Error::new(libc::EINVAL, "ring client is NULL")),
    }
}

/// A caller's buffer of `len` elements: non-NULL unless empty, and a length a slice can
/// have, at most isize::MAX bytes (a -1 from a failed read() passed on as a size_t, or a
/// count of iovecs whose bytes overflow, must be an error, not undefined behaviour).
fn buffer_arg<T>(ptr: *const T, len: usize, what: &str, too_long: i32) -> Result<()> {
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        Err(Error::new(too_long, format!("{what} length {len} is impossible")))
    } else if ptr.is_null() && len > 0 {
        Err(Error::new(libc::EINVAL, format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// # Safety
/// `out` has room for two spans.
unsafe fn write_spans(out: *mut ring_span, spans: [Span; 2]) {
    for (i, span) in spans.into_iter().enumerate() {
        // SAFETY: per our contract, `out` has room for two spans; `i` is 0 or 1.
        unsafe { out.add(i).write(ring_span { data: span.ptr.cast(), len: span.len }) };
    }
}

/// Creates ring `name` with at least data_bytes of data (0: 8 MiB) and max_consumers
/// consumer slots (0: 100), mode 0666. -EEXIST if the name is taken; nothing is left
/// behind on failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_create(name: *const c_char, data_bytes: u64, max_consumers: u32) -> c_int {
    // SAFETY: our own caller's contract is ring_create_mode's.
    unsafe { ring_create_mode(name, data_bytes, max_consumers, RING_DEFAULT_MODE) }
}

/// ring_create with explicit permissions, e.g. 0660 or 0600 to keep other users out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_create_mode(
    name: *const c_char,
    data_bytes: u64,
    max_consumers: u32,
    mode: u32,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::create(name, CreateOptions { data_bytes, max_consumers, mode }).map(|()| 0)
    })
}

/// Makes the shared-memory object `name` a ring for max_consumers (0: 100), as
/// NSCLDAQ's format does: an existing ring (its data area shrinks or grows to match),
/// a corrupt one, or any object with room for the header and two data bytes (else
/// -EINVAL). -EBUSY while clients are attached.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_format(name: *const c_char, max_consumers: u32) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::format(name, max_consumers).map(|()| 0)
    })
}

/// After ring_create said -EEXIST: adopts ring `name` as NSCLDAQ's CRingBuffer::create
/// does when its host's ring master does not list it (registers it there, and 0 says the
/// create may count as done). -EEXIST when the ring master lists it or there is no ring
/// master; -ENOENT/-EBADMSG when `name` is no ring.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_adopt(name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        if !ring::exists(name)? {
            return Err(Error::new(libc::ENOENT, format!("cannot adopt {name}: it is not a ring")));
        }
        crate::remote::master::adopt(name).map(|()| 0)
    })
}

/// Removes ring `name`. -ENOENT if there is none; -EPERM if it is another user's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_remove(name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::remove(name).map(|()| 0)
    })
}

/// 1 if `name` is a ring, 0 if it is missing or not a ring, < 0 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_exists(name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::exists(name).map(c_int::from)
    })
}

/// Every ring on this host, sorted. Free with ring_list_free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_list(names: *mut *mut *mut c_char, count: *mut usize) -> c_int {
    guard(|| {
        let names = out_arg(names, "names")?;
        let count = out_arg(count, "count")?;
        let found = ring::list()?;
        let n = found.len();
        let array: Box<[*mut c_char]> =
            found.into_iter().map(|name| CString::new(name).unwrap_or_default().into_raw()).collect();
        // SAFETY: both out-pointers are non-NULL (checked) and valid for a write, per the contract.
        unsafe {
            *names = if n == 0 { std::ptr::null_mut() } else { Box::into_raw(array).cast() };
            *count = n;
        }
        Ok(0)
    })
}

/// Frees a list from ring_list. NULL is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_list_free(names: *mut *mut c_char, count: usize) {
    if names.is_null() {
        return;
    }
    guard_infallible((), || {
        // SAFETY: `names` and `count` come from ring_list, which boxed exactly this slice.
        let array = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(names, count)) };
        for &name in array.iter() {
            if !name.is_null() {
                // SAFETY: ring_list made each name with CString::into_raw; freed once here.
                drop(unsafe { CString::from_raw(name) });
            }
        }
    })
}

/// # Safety
/// As for ring_attach_producer and ring_attach_consumer.
unsafe fn attach(name: *const c_char, out: *mut *mut ring_client, make: impl FnOnce(&str) -> Result<Side>) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        let out = out_arg(out, "out")?;
        let side = make(name)?;
        let attached = match &side {
            Side::Producer(p) => p.name(),
            Side::Consumer(c) => c.name(),
        };
        let client = Box::new(ring_client { name: CString::new(attached).unwrap_or_default(), side });
        // SAFETY: non-NULL (checked), and valid for a write per our contract.
        unsafe { *out = Box::into_raw(client) };
        Ok(0)
    })
}

/// Attaches as the producer of ring `name`. -EACCES if it has a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_attach_producer(name: *const c_char, out: *mut *mut ring_client) -> c_int {
    // SAFETY: our contract is attach's.
    unsafe { attach(name, out, |n| Producer::attach(n).map(Side::Producer)) }
}

/// Attaches as a consumer of ring `name`; it sees data put from now on. -ENOMEM if
/// every consumer slot is taken by a live process. `name` may be `tcp://host/ring`: a
/// ring on another host, read through a local proxy ring fed by the daqflow-feeder
/// program (started if needed; see docs/remote.md); localhost and this host's own names
/// mean the local ring. -EPERM when that host lists a ring master only under accounts
/// this process does not trust, or every proxy ring name is held by someone it does not
/// trust (see docs/security.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_attach_consumer(name: *const c_char, out: *mut *mut ring_client) -> c_int {
    // SAFETY: our contract is attach's.
    unsafe { attach(name, out, |n| Consumer::attach(n).map(Side::Consumer)) }
}

/// The name of the ring client is attached to: for a consumer of tcp://host/ring, the
/// local proxy ring it reads (or the ring itself when host is this one). Valid until
/// ring_detach. NULL for a NULL client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_client_name(client: *const ring_client) -> *const c_char {
    // SAFETY: NULL or a handle from ring_attach_*, per the contract.
    guard_infallible(std::ptr::null(), || unsafe { client.as_ref() }.map_or(std::ptr::null(), |c| c.name.as_ptr()))
}

/// Releases the slot and frees the handle. NULL is allowed. When a ring master is
/// advertised on the local port manager it is told first; if that fails, the slot is
/// still released and the handle freed, and the error is returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_detach(client: *mut ring_client) -> c_int {
    if client.is_null() {
        return 0;
    }
    guard(|| {
        // SAFETY: a handle from ring_attach_*, not used again by the caller.
        let client = unsafe { Box::from_raw(client) };
        match client.side {
            Side::Producer(p) => p.detach(),
            Side::Consumer(c) => c.detach(),
        }
        .map(|()| 0)
    })
}

/// Gives the client's slot back now, as ring_detach does (and telling the ring master
/// the same way), but keeps the handle and the ring mapped: memory obtained through it
/// (ring_borrow, ring_reserve, ring_position) stays readable until ring_detach, which must
/// still be called. Every later call on the handle but ring_client_name and ring_detach
/// fails with -ENOTCONN. For a language runtime whose views of ring memory may outlive
/// the client. 0 (also when called again, and in a forked child, where the slot is the
/// parent's); -EINVAL for NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_leave(client: *mut ring_client) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { client.as_mut() }
            .ok_or_else(|| crate::Error::new(libc::EINVAL, "ring_leave: NULL client".to_string()))?;
        match &mut client.side {
            Side::Producer(p) => p.leave(),
            Side::Consumer(c) => c.leave(),
        }
        .map(|()| 0)
    })
}

/// Puts all len bytes or nothing. 0 on success; -ETIMEDOUT; -EMSGSIZE if len can never
/// fit (more than data bytes - 1).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_put(
    producer: *mut ring_client,
    data: *const c_void,
    len: usize,
    timeout_ms: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let p = unsafe { as_producer(producer) }?;
        buffer_arg(data, len, "data", libc::EMSGSIZE)?;
        // SAFETY: non-NULL and at most isize::MAX (buffer_arg), and readable for `len`
        // bytes per the contract; the slice lives only for this call.
        let data = if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) } };
        p.put(data, timeout(timeout_ms)?).map(|()| 0)
    })
}

/// Puts count records, each whole and in order, published together (one wake-up for
/// many small records instead of one per record); records[i] is iov_base, iov_len. The
/// timeout bounds the whole call. Returns how many records were put: count, or fewer
/// when the timeout passed (or the ring failed) after some were put; the next call then
/// starts with the first record not put. -ETIMEDOUT when none could be put;
/// -EMSGSIZE (nothing put) if any record can never fit; -EINVAL (nothing put) for a
/// NULL iov_base with a nonzero iov_len, or a count no array of iovecs can have (its
/// bytes past SSIZE_MAX); count 0 returns 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_putv(
    producer: *mut ring_client,
    records: *const libc::iovec,
    count: usize,
    timeout_ms: c_int,
) -> libc::ssize_t {
    guard(|| {
        // SAFETY: the caller passes a handle from ring_attach_producer, not yet detached.
        let p = unsafe { as_producer(producer) }?;
        buffer_arg(records, count, "records", libc::EINVAL)?;
        // SAFETY: checked non-NULL unless count is 0; the caller promises count iovecs.
        let records = if count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(records, count) } };
        // All checked before anything is put: a bad record fails the call with nothing put.
        if let Some(i) = records.iter().position(|r| buffer_arg(r.iov_base, r.iov_len, "", 0).is_err()) {
            buffer_arg(records[i].iov_base, records[i].iov_len, &format!("records[{i}].iov_base"), libc::EMSGSIZE)?;
        }
        let record = |i: usize| -> &[u8] {
            let r: &libc::iovec = &records[i];
            if r.iov_len == 0 {
                &[]
            } else {
                // SAFETY: checked non-NULL with a length that fits an isize above; the
                // caller promises iov_len readable bytes that outlive the call.
                unsafe { std::slice::from_raw_parts(r.iov_base.cast::<u8>(), r.iov_len) }
            }
        };
        p.put_records(count, record, timeout(timeout_ms)?).map(|n| n as isize)
    })
}

/// Waits until at least min bytes are available, then copies min(available, max).
/// Returns the count; -ETIMEDOUT; -EMSGSIZE if min can never be satisfied. min 0
/// never waits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_get(
    consumer: *mut ring_client,
    buf: *mut c_void,
    min: usize,
    max: usize,
    timeout_ms: c_int,
) -> libc::ssize_t {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let c = unsafe { as_consumer(consumer) }?;
        buffer_arg(buf, max, "buf", libc::EINVAL)?;
        // SAFETY: non-NULL and at most isize::MAX (buffer_arg), and writable for `max`
        // bytes per the contract; the slice lives only for this call.
        let buf = if max == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), max) } };
        c.get(buf, min as u64, timeout(timeout_ms)?).map(|n| n as isize)
    })
}

/// Copies up to max available bytes without consuming them; never blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_peek(consumer: *mut ring_client, buf: *mut c_void, max: usize) -> libc::ssize_t {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let c = unsafe { as_consumer(consumer) }?;
        buffer_arg(buf, max, "buf", libc::EINVAL)?;
        // SAFETY: as for ring_get.
        let buf = if max == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), max) } };
        c.peek(buf).map(|n| n as isize)
    })
}

/// Consumes len bytes without copying. -ERANGE if fewer are available.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_skip(consumer: *mut ring_client, len: usize) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { as_consumer(consumer) }?;
        client.skip(len as u64).map(|()| 0)
    })
}

/// Bytes a consumer can get now (0 on error; see daqflow_last_error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_available_data(consumer: *const ring_client) -> u64 {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { as_consumer(consumer.cast_mut()) }?;
        client.available().map(|n| n as isize)
    })
    .max(0) as u64
}

/// Bytes a producer can put now without blocking (0 on error).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_available_put_space(producer: *const ring_client) -> u64 {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { as_producer(producer.cast_mut()) }?;
        client.available_space().map(|n| n as isize)
    })
    .max(0) as u64
}

/// The consumer slot index of a consumer; -1 for a producer; -EINVAL for NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_slot(client: *const ring_client) -> c_int {
    // SAFETY: NULL or a live handle from ring_attach_*, per the contract.
    guard(|| match unsafe { client.as_ref() } {
        Some(ring_client { side: Side::Consumer(c), .. }) => Ok(c.slot() as c_int),
        Some(ring_client { side: Side::Producer(_), .. }) => Ok(-1),
        None => Err(Error::new(libc::EINVAL, "ring client is NULL")),
    })
}

/// Fills *info and up to capacity consumer entries (slot order); returns the number
/// of consumer slots in use, which may exceed capacity. consumers may be NULL when
/// capacity is 0. Slots of dead clients are freed first.
/// name may be a URL, tcp://host/ring: this host's names mean the local ring; for
/// another host the figures are what its ring master LISTs (slot is then UINT32_MAX:
/// LIST does not say); -ENOENT when it lists no such ring, -ECONNREFUSED when the host
/// runs no ring master, -EPERM when it runs one only under accounts this process does not
/// trust (see docs/security.md).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_usage(
    name: *const c_char,
    info: *mut ring_usage_info,
    consumers: *mut ring_consumer_info,
    capacity: usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        let info = out_arg(info, "info")?;
        buffer_arg(consumers, capacity, "consumers", libc::EINVAL)?;
        let usage = match crate::remote::url::parse(name)? {
            Some(url) => crate::remote::usage(&url)?,
            None => ring::usage(name)?,
        };
        let n = usage.consumers.len();
        // SAFETY: `info` is non-NULL (checked) and valid for a write, per the contract; `consumers` has room for
        // `capacity` entries.
        unsafe {
            info.write(ring_usage_info {
                data_bytes: usage.data_bytes,
                put_space: usage.put_space,
                max_consumers: usage.max_consumers,
                producer_pid: usage.producer_pid,
                max_get: usage.max_get,
                min_get: usage.min_get,
                n_consumers: n as u32,
            });
            for (i, c) in usage.consumers.iter().take(capacity).enumerate() {
                consumers.add(i).write(ring_consumer_info { pid: c.pid, slot: c.slot, backlog: c.backlog });
            }
        }
        Ok(n as c_int)
    })
}

/// Frees the producer slot of ring `name`, whoever holds it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_disconnect_producer(name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::disconnect_producer(name).map(|()| 0)
    })
}

/// Frees consumer slot `slot` of ring `name`. -ERANGE for a slot the ring lacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_disconnect_consumer(name: *const c_char, slot: u32) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated, per the contract; str_arg checks NULL.
        let name = unsafe { str_arg(name, "ring name") }?;
        ring::disconnect_consumer(name, slot).map(|()| 0)
    })
}

/// Zero-copy put, step 1: waits for len bytes of space and lends them in place as
/// spans[0] and spans[1] (the second non-empty only when the space wraps). Fill them,
/// then ring_commit. One reservation at a time; ring_put is refused while one is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_reserve(
    producer: *mut ring_client,
    len: usize,
    spans: *mut ring_span,
    timeout_ms: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let p = unsafe { as_producer(producer) }?;
        let out = out_arg(spans, "spans")?;
        let reserved = p.reserve(len as u64, timeout(timeout_ms)?)?;
        // SAFETY: non-NULL (checked), with room for two spans per the contract.
        unsafe { write_spans(out, reserved) };
        Ok(0)
    })
}

/// Zero-copy put, step 2: publishes the first len reserved bytes (len may be less
/// than reserved; the rest is given back).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_commit(producer: *mut ring_client, len: usize) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { as_producer(producer) }?;
        client.commit(len as u64).map(|()| 0)
    })
}

/// Zero-copy get, step 1: waits for at least min bytes, then lends up to max of them
/// in place as spans[0] and spans[1]. Returns the bytes lent. Read them, then
/// ring_release.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_borrow(
    consumer: *mut ring_client,
    min: usize,
    max: usize,
    spans: *mut ring_span,
    timeout_ms: c_int,
) -> libc::ssize_t {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let c = unsafe { as_consumer(consumer) }?;
        let out = out_arg(spans, "spans")?;
        let lent = c.borrow(min as u64, max as u64, timeout(timeout_ms)?)?;
        let n = lent[0].len + lent[1].len;
        // SAFETY: non-NULL (checked), with room for two spans per the contract.
        unsafe { write_spans(out, lent) };
        Ok(n as isize)
    })
}

/// Zero-copy get, step 2: consumes the first len borrowed bytes and ends the borrow.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_release(consumer: *mut ring_client, len: usize) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ring_attach_* not yet detached, used by one thread at a time, per the contract.
        let client = unsafe { as_consumer(consumer) }?;
        client.release(len as u64).map(|()| 0)
    })
}

/// Where the client stands in ring memory, for code that reads or writes in place the
/// NSCLDAQ way: *at gets the address of the next byte a consumer reads (or a producer
/// writes) and *to_top the bytes from there to the end of the data area, after which
/// the ring continues at its start. A consumer then consumes with ring_skip; a producer
/// publishes bytes written there with ring_reserve and ring_commit of their length.
/// Refused (-EBUSY) while a borrow or reservation is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_position(client: *mut ring_client, at: *mut *mut c_void, to_top: *mut usize) -> c_int {
    guard(|| {
        let at = out_arg(at, "at")?;
        let to_top = out_arg(to_top, "to_top")?;
        // A zero-byte lend names both the client's position (first span) and the start
        // of the data area (second span), without moving anything.
        // SAFETY: NULL or a live handle from ring_attach_*, used by one thread, per the contract.
        let ([here, base], data_bytes) = match unsafe { client.as_mut() } {
            Some(ring_client { side: Side::Consumer(c), .. }) => {
                let spans = c.borrow(0, 0, Some(Duration::ZERO))?;
                c.release(0)?;
                (spans, c.geometry().data_bytes())
            }
            Some(ring_client { side: Side::Producer(p), .. }) => {
                let spans = p.reserve(0, Some(Duration::ZERO))?;
                p.commit(0)?;
                (spans, p.geometry().data_bytes())
            }
            None => return Err(Error::new(libc::EINVAL, "ring client is NULL")),
        };
        let offset = (here.ptr as usize) - (base.ptr as usize);
        // SAFETY: both out-pointers are non-NULL (checked) and valid for a write, per the contract.
        unsafe {
            *at = here.ptr.cast();
            *to_top = data_bytes as usize - offset;
        }
        Ok(0)
    })
}
