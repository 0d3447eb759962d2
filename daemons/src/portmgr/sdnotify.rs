//! systemd's readiness protocol (`sd_notify`), written out: one datagram to the socket
//! named by `$NOTIFY_SOCKET`. Without that variable (not started by systemd) it does
//! nothing, so the daemon runs the same everywhere.
//!
//! Kept by hand rather than the `sd-notify` crate (0.5.0, checked for issue 14): the crate
//! connects to `$NOTIFY_SOCKET` as a file path only, so an `@name` (a socket in the
//! abstract namespace, which sd_notify(3) specifies) fails with ENOENT and the unit never
//! becomes ready (`sends_to_an_abstract_name` below is the case). What the daemons send is
//! READY (with MAINPID) and STOPPING, no WATCHDOG (the units set no WatchdogSec).
//! `NOTIFY_SOCKET` stays set, as the crate's `notify` leaves it: neither daemon starts
//! programs that could mistake it for theirs, the units say NotifyAccess=main, and
//! unsetting it would need `remove_var`, unsound once the daemons' threads run. The sender
//! is 20 lines with no `unsafe`, the same datagram the crate sends.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// Sends `state` (e.g. `READY=1`) to systemd; `Ok(false)` when there is no one to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    send(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// Sends `state` to `target`, a `$NOTIFY_SOCKET` value: a path, or `@` and the name of a
/// socket in the abstract namespace.
fn send(target: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(target) = target else {
        return Ok(false);
    };
    let addr = match target.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(target))?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn sends_one_datagram_to_a_path() {
        let dir = std::env::temp_dir().join(format!("daqflow-sdnotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        assert!(send(Some(path.as_os_str()), "READY=1\nSTATUS=test").unwrap());
        assert_eq!(received(&listener), b"READY=1\nSTATUS=test");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What the sd-notify crate (0.5.0) cannot do, and why this module stays.
    #[test]
    fn sends_to_an_abstract_name() {
        let name = format!("daqflow-sdnotify-{}", std::process::id());
        let listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        assert!(send(Some(OsStr::new(&format!("@{name}"))), "STOPPING=1").unwrap());
        assert_eq!(received(&listener), b"STOPPING=1");
    }

    #[test]
    fn without_a_socket_nothing_is_sent() {
        assert!(!send(None, "READY=1").unwrap());
        assert!(send(Some(OsStr::new("/nonexistent/notify")), "READY=1").is_err());
    }
}
