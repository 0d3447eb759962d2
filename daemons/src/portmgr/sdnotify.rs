//! systemd's readiness protocol (`sd_notify`), written out: one datagram to the socket
//! named by `$NOTIFY_SOCKET`. Without that variable (not started by systemd) it does
//! nothing, so the daemon runs the same everywhere.
//!
//! Kept by hand rather than the `sd-notify` crate (0.5.0, checked for issue 14): the crate
//! connects to `$NOTIFY_SOCKET` as a file path only, so an `@name` (a socket in the abstract
//! namespace, which sd_notify(3) specifies and service managers in containers hand out)
//! fails with ENOENT and the unit never becomes ready; and it returns the same `Ok(())`
//! whether it told someone or no one was listening, which the daemons' logs distinguish.
//! What the daemons send is READY (with MAINPID) and STOPPING, no WATCHDOG (the units set
//! no WatchdogSec). `NOTIFY_SOCKET` stays set: neither daemon starts programs that could
//! mistake it for theirs, the units say NotifyAccess=main, and unsetting it would need
//! `remove_var`, unsound once the daemons' threads run. This is 15 lines with no `unsafe`;
//! the crate's `notify` is the same datagram.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// Sends `state` (e.g. `READY=1`) to systemd; `Ok(false)` when there is no one to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    // A leading '@' names a socket in the abstract namespace.
    let addr = match target.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(&target))?,
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

    /// One test for both kinds of address: it is the only one in the crate touching
    /// NOTIFY_SOCKET, which tests run at once would otherwise race on.
    #[test]
    fn sends_one_datagram_to_a_path_or_an_abstract_name_or_nothing() {
        let dir = std::env::temp_dir().join(format!("daqflow-sdnotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        // SAFETY (test): this test is the only one in the crate touching NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1\nSTATUS=test").unwrap());
        assert_eq!(received(&listener), b"READY=1\nSTATUS=test");

        let name = format!("daqflow-sdnotify-{}", std::process::id());
        let abstract_listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        // SAFETY (test): as above.
        unsafe { std::env::set_var("NOTIFY_SOCKET", format!("@{name}")) };
        assert!(notify("STOPPING=1").unwrap());
        assert_eq!(received(&abstract_listener), b"STOPPING=1");

        // SAFETY (test): as above.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!notify("READY=1").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
