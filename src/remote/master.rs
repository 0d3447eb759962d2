//! Telling the local ring master (ours or NSCLDAQ's) about this process's rings and
//! clients, so that it and NSCLDAQ's tools see them: CONNECT/DISCONNECT around attach
//! and detach, REGISTER/UNREGISTER around create and remove.
//!
//! Only when a `RingMaster` run by a trusted user (see `crate::trust`) is advertised on
//! the local port manager; otherwise rings work daemonless and this costs one refused
//! connect (no port manager) or one LIST.
//! One connection per process, kept open: a legacy ring master frees a client's slots
//! when its connection closes. Every exchange is time-boxed by the client; a ring master
//! that dies or talks garbage costs the call an error, never a hang.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::ringmaster::client::{Listed, lookup};
use crate::ringmaster::{Client, Role};

/// Environment variable: `off` keeps this process away from any ring master.
pub const RINGMASTER_ENV: &str = "DAQFLOW_RINGMASTER";
/// Bound on each exchange (and on finding the ring master).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// What CONNECT says about us.
const COMMENT: &str = "daqflow";

/// The open connection and the process it belongs to (a forked child must open its own).
struct Link {
    pid: u32,
    client: Client,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);
fn enabled() -> bool {
    std::env::var_os(RINGMASTER_ENV).is_none_or(|v| v != "off")
}

/// Runs `exchange` with the local ring master, if one is advertised. A kept connection
/// that turns out broken (the ring master restarted or went away) is replaced once:
/// only a ring master found just now and failing costs an error.
fn with_master(exchange: impl Fn(&mut Client) -> Result<()>) -> Result<()> {
    if !enabled() {
        return Ok(());
    }
    let mut link = LINK.lock();
    let me = std::process::id();
    if let Some(kept) = link.as_mut().filter(|l| l.pid == me) {
        match exchange(&mut kept.client) {
            Ok(()) => return Ok(()),
            Err(e) if !matches!(e.errno(), libc::EPIPE | libc::ECONNRESET | libc::ETIMEDOUT | libc::EPROTO) => {
                return Err(e);
            }
            Err(_) => {}
        }
    }
    *link = None;
    // A port file that cannot be read names no port manager, so no ring master either;
    // the rings themselves do not depend on it.
    let Ok(portmgr_port) = crate::portmgr::client::default_port() else {
        return Ok(());
    };
    let port = match lookup("localhost", Some(portmgr_port), TIMEOUT) {
        Ok(Listed::Trusted(port)) => port,
        // No ring master registered, or only one run by a user we do not trust (anyone
        // can register the service: telling it our rings would leak them, and failing
        // would let it stop everyone's rings): daemonless.
        Ok(Listed::None | Listed::Untrusted(_)) => return Ok(()),
        // No port manager, or something else on its port (an untrusted user's, `EPERM`):
        // daemonless, as with none, so that it can neither hear of our rings nor fail them.
        Err(e) if matches!(e.errno(), libc::ECONNREFUSED | libc::EPERM) => return Ok(()),
        Err(e) => return Err(Error::new(e.errno(), format!("looking for the local ring master: {}", e.message()))),
    };
    let mut client = match Client::connect_listed(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), TIMEOUT) {
        Ok(client) => client,
        // Advertised, but still refusing after a while: one that died before the port
        // manager noticed. As good as none; so is an untrusted user's on its port (`EPERM`).
        Err(e) if matches!(e.errno(), libc::ECONNREFUSED | libc::EPERM) => return Ok(()),
        Err(e) => return Err(e),
    };
    exchange(&mut client)?;
    *link = Some(Link { pid: me, client });
    Ok(())
}

fn pid() -> i32 {
    std::process::id() as i32
}

/// After claiming `role` in `ring`.
pub fn connected(ring: &str, role: Role) -> Result<()> {
    with_master(|c| c.connect(ring, role, pid(), COMMENT))
}

/// Before releasing `role` in `ring`.
pub fn disconnecting(ring: &str, role: Role) -> Result<()> {
    with_master(|c| c.disconnect(ring, role, pid()))
}

/// After creating `ring`.
pub fn registered(ring: &str) -> Result<()> {
    with_master(|c| c.register(ring))
}

/// Before removing `ring`.
pub fn unregistering(ring: &str) -> Result<()> {
    with_master(|c| c.unregister(ring))
}

/// NSCLDAQ's `CRingBuffer::create` of a ring that exists already: a ring the local ring
/// master does not list (made while no ring master ran, or before this one started) is
/// adopted, registered as if just created, and the create succeeds; one it lists is
/// `EEXIST`. So a program that creates its ring at every start works on the ring an
/// earlier run left. With no ring master there is nothing to adopt into: `EEXIST`.
pub fn adopt(ring: &str) -> Result<()> {
    let exists = || Error::new(libc::EEXIST, format!("ring {ring} already exists"));
    let adopted = std::cell::Cell::new(false);
    with_master(|c| {
        if !c.list()?.iter().any(|(name, _)| name == ring) {
            c.register(ring)?;
            adopted.set(true);
        }
        Ok(())
    })?;
    if adopted.get() { Ok(()) } else { Err(exists()) }
}
