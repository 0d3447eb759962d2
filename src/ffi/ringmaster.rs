//! C ABI for the ring master client: what NSCLDAQ's `CRingMaster` class does (tell the
//! local ring master about rings and clients, list rings, ask a ring master for a ring's
//! data as a socket), as argument checks over `crate::ringmaster::Client`.
//!
//! The safety contract of every function is the header's: NULL or valid pointers,
//! NUL-terminated strings, handles from ringmaster_open used by one thread at a time.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CString, c_char, c_int};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::IntoRawFd;
use std::time::Duration;

use super::{guard, guard_infallible, opt_str_arg, out_arg, str_arg};
use crate::error::{Error, Result};
use crate::ringmaster::{Client, Role};

/// Bound on finding and connecting to a ring master, and on each exchange with it.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a ring master (opaque).
pub struct ringmaster {
    state: State,
    /// Whether the ring master is this host's, reached on the loopback address.
    local: bool,
    /// The reply that made the last call fail, if one did.
    refusal: Option<String>,
    /// ringmaster_usage's and ringmaster_refusal's answers, kept so the pointers they
    /// return stay valid until the next call.
    text: Option<CString>,
}

enum State {
    Open(Client),
    /// ringmaster_request_data handed the connection to the caller.
    Data,
    /// An exchange failed half way and shut the connection down.
    Broken,
}

/// The connection behind a handle.
///
/// # Safety
/// `rm` is NULL or a handle from ringmaster_open not yet closed, which no other thread
/// uses while the result lives.
unsafe fn handle<'a>(rm: *mut ringmaster) -> Result<&'a mut ringmaster> {
    // SAFETY: per our contract, NULL (as_mut says None) or a live, unshared handle.
    unsafe { rm.as_mut() }.ok_or_else(|| Error::new(libc::EINVAL, "ringmaster handle is NULL"))
}

/// The handle for a call that talks to the ring master: forgets the last call's answers.
///
/// # Safety
/// As for [`handle`].
unsafe fn begin<'a>(rm: *mut ringmaster) -> Result<&'a mut ringmaster> {
    // SAFETY: our contract is handle's.
    let rm = unsafe { handle(rm) }?;
    rm.refusal = None;
    rm.text = None;
    Ok(rm)
}

impl ringmaster {
    fn client(&mut self, doing: &str) -> Result<&mut Client> {
        match &mut self.state {
            State::Open(client) => Ok(client),
            State::Data => Err(Error::new(
                libc::EACCES,
                format!("{doing}: this ring master connection carries ring data now; open another"),
            )),
            State::Broken => Err(Error::new(
                libc::EPIPE,
                format!("{doing}: this ring master connection was shut down after an earlier failure; open another"),
            )),
        }
    }

    /// Registration and client announcements are for this host's ring master only, as
    /// in NSCLDAQ (whose class says ENOTSUP before sending anything).
    fn local_client(&mut self, doing: &str) -> Result<&mut Client> {
        if !self.local {
            let server = match &self.state {
                State::Open(c) => c.server().to_string(),
                _ => "another host".to_string(),
            };
            return Err(Error::new(
                libc::ENOTSUP,
                format!(
                    "{doing}: only this host's ring master, reached as localhost, takes this (connected to {server})"
                ),
            ));
        }
        self.client(doing)
    }
}

/// Runs one exchange, remembering the reply that made it fail, if any.
fn exchange<T>(rm: &mut ringmaster, run: impl FnOnce(&mut ringmaster) -> Result<T>) -> Result<T> {
    let done = run(rm);
    if done.is_err() {
        if let State::Open(client) = &rm.state {
            rm.refusal = client.refusal().map(str::to_string);
            if client.is_broken() {
                rm.state = State::Broken;
            }
        }
    }
    done
}

/// NSCLDAQ's rule: a ring master is local when its host's address is 127.0.0.1 (or ::1).
fn loopback(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// Connects to the ring master of host (NULL: "localhost"), found as the RingMaster
/// service of the port manager on that host (at portmgr_default_port()). Finding and
/// connecting take at most 5 s, and so does each later exchange. -ECONNREFUSED when no
/// port manager answers or it lists no RingMaster; -EHOSTUNREACH when host does not
/// resolve; -EPERM when it lists one only under accounts this process does not trust,
/// or when the port manager or ring master reached on this host is run by one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_open(host: *const c_char, out: *mut *mut ringmaster) -> c_int {
    guard(|| {
        let out = out_arg(out, "out")?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let host = unsafe { opt_str_arg(host, "host") }?.unwrap_or("localhost");
        let portmgr_port = crate::portmgr::client::default_port()?;
        let client = Client::locate(host, Some(portmgr_port), TIMEOUT)?;
        let local = loopback(client.server().ip());
        // SAFETY: `out` is non-NULL (checked) and valid for a write, per the contract.
        unsafe {
            *out = Box::into_raw(Box::new(ringmaster { state: State::Open(client), local, refusal: None, text: None }))
        };
        Ok(0)
    })
}

/// 1 when rm is connected to this host's ring master through the loopback address
/// (127.0.0.1 or ::1), which alone accepts the ringmaster_notify_* calls; else 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_is_local(rm: *mut ringmaster) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { handle(rm) }?;
        Ok(c_int::from(rm.local))
    })
}

/// Tells the ring master that ring was created (REGISTER). -ENOTSUP unless
/// ringmaster_is_local. A ring master that does not accept it (no such ring, say)
/// makes this fail with the errno its reply maps to; ringmaster_refusal gives the reply.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_notify_create(rm: *mut ringmaster, ring: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        // SAFETY: a NUL-terminated string, per the contract.
        let ring = unsafe { str_arg(ring, "ring name") }?;
        exchange(rm, |rm| rm.local_client("registering a ring")?.register(ring)).map(|()| 0)
    })
}

/// Tells the ring master that ring is about to be removed (UNREGISTER). As
/// ringmaster_notify_create.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_notify_destroy(rm: *mut ringmaster, ring: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        // SAFETY: a NUL-terminated string, per the contract.
        let ring = unsafe { str_arg(ring, "ring name") }?;
        exchange(rm, |rm| rm.local_client("unregistering a ring")?.unregister(ring)).map(|()| 0)
    })
}

fn role(slot: c_int) -> Result<Role> {
    match slot {
        -1 => Ok(Role::Producer),
        s if s >= 0 => Ok(Role::Consumer(s as u32)),
        s => Err(Error::new(libc::EINVAL, format!("slot {s}: use -1 for the producer, else a consumer slot"))),
    }
}

/// Tells the ring master that this process has become the producer (slot -1) or the
/// consumer in slot `slot` of ring (CONNECT), with a comment (NULL: none; no braces,
/// backslashes or control characters). The ring master frees the slot when this
/// connection closes and the process has exited. As ringmaster_notify_create.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_notify_connect(
    rm: *mut ringmaster,
    ring: *const c_char,
    slot: c_int,
    comment: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        // SAFETY: NULL or NUL-terminated strings, per the contract; str_arg checks NULL.
        let ring = unsafe { str_arg(ring, "ring name") }?;
        // SAFETY: as for `ring`.
        let comment = unsafe { opt_str_arg(comment, "comment") }?.unwrap_or("");
        let role = role(slot)?;
        let pid = std::process::id() as i32;
        exchange(rm, |rm| rm.local_client("announcing a ring client")?.connect(ring, role, pid, comment)).map(|()| 0)
    })
}

/// Tells the ring master that this process is about to release the producer slot (slot
/// -1) or consumer slot `slot` of ring (DISCONNECT). As ringmaster_notify_create.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_notify_disconnect(rm: *mut ringmaster, ring: *const c_char, slot: c_int) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        // SAFETY: a NUL-terminated string, per the contract.
        let ring = unsafe { str_arg(ring, "ring name") }?;
        let role = role(slot)?;
        let pid = std::process::id() as i32;
        exchange(rm, |rm| rm.local_client("announcing a ring client's release")?.disconnect(ring, role, pid))
            .map(|()| 0)
    })
}

/// The ring master's LIST, as the one line of text it sent (a Tcl list of {name
/// {usage}} pairs, without its line end; the usage is data bytes, free space, consumer
/// slots, producer pid, largest and smallest backlog, and {pid backlog} per consumer).
/// *text stays valid until the next call on rm. Works with any host's ring master.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_usage(rm: *mut ringmaster, text: *mut *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        let text = out_arg(text, "text")?;
        let (_, line) = exchange(rm, |rm| rm.client("listing rings")?.list_with_text())?;
        let line = CString::new(line).map_err(|_| Error::new(libc::EPROTO, "the ring master's LIST contains a NUL"))?;
        // SAFETY: `text` is non-NULL (checked) and valid for a write, per the contract; the string lives in the
        // handle until the next call.
        unsafe { *text = line.as_ptr() };
        rm.text = Some(line);
        Ok(0)
    })
}

/// Asks the ring master for ring's data (REMOTE). On success *fd is a connected TCP
/// socket (close-on-exec) that carries every byte put into the ring from about now on;
/// it is the caller's to read and close, and rm can do nothing more (-EACCES). Works
/// with any host's ring master that lets this host read its rings (-EPERM otherwise;
/// -ENOENT no such ring; -EBUSY this host already has the most streams of it allowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_request_data(rm: *mut ringmaster, ring: *const c_char, fd: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { begin(rm) }?;
        // SAFETY: a NUL-terminated string, per the contract.
        let ring = unsafe { str_arg(ring, "ring name") }?;
        let fd = out_arg(fd, "fd")?;
        exchange(rm, |rm| rm.client("asking for ring data")?.ask_remote(ring))?;
        let State::Open(client) = std::mem::replace(&mut rm.state, State::Data) else {
            return Err(Error::new(libc::EIO, "internal error: the ring master connection vanished"));
        };
        // SAFETY: `fd` is non-NULL (checked) and valid for a write, per the contract.
        unsafe { *fd = client.into_data_stream().into_raw_fd() };
        Ok(0)
    })
}

/// The ring master's own reply when the last call on rm failed because it answered
/// something other than what was asked for (an ERROR line, or something that is not
/// the protocol): returns 1 and points *reply at it (valid until the next call on rm).
/// Returns 0, leaving *reply alone, when that call succeeded or failed otherwise (no
/// connection, no answer in time, refused before sending).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_refusal(rm: *mut ringmaster, reply: *mut *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from ringmaster_open not yet closed, used by one thread at a time, per the contract.
        let rm = unsafe { handle(rm) }?;
        let reply = out_arg(reply, "reply")?;
        let Some(said) = &rm.refusal else { return Ok(0) };
        let said = CString::new(said.replace('\0', "\u{fffd}")).unwrap_or_default();
        // SAFETY: `reply` is non-NULL (checked) and valid for a write, per the contract; the string lives in the
        // handle until the next call.
        unsafe { *reply = said.as_ptr() };
        rm.text = Some(said);
        Ok(1)
    })
}

/// Closes the connection (not a data socket handed out by ringmaster_request_data) and
/// frees rm. NULL is allowed. A legacy ring master frees the slots announced on this
/// connection whose processes have exited.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ringmaster_close(rm: *mut ringmaster) {
    if rm.is_null() {
        return;
    }
    guard_infallible((), || {
        // SAFETY: a handle from ringmaster_open, not used again by the caller.
        drop(unsafe { Box::from_raw(rm) });
    })
}
