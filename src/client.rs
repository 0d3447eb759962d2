//! The client layer's hooks into the ring core (see `ring::Hooks`): a process that
//! installs them announces its rings and clients to the local ring master
//! (`remote::master`), opens `tcp://host/ring` names through a proxy ring (`remote`), and
//! restarts a proxy's feeder while it waits for data (`remote::revive`).
//!
//! The C ABI installs them before its first ring operation, the tools at their start; a
//! Rust program that wants NSCLDAQ's behaviour calls `install` once. A ring master never
//! does: its senders must not announce the rings they read to itself.

use crate::error::{Error, Result};
use crate::remote::{self, master, revive::Revival};
use crate::ring::{self, Consumer, Hooks, Idle, Role};

struct ClientLayer;

static CLIENT_LAYER: ClientLayer = ClientLayer;

/// Installs the client layer into the ring core for the whole process (idempotent).
pub fn install() {
    ring::install_hooks(&CLIENT_LAYER);
}

impl Hooks for ClientLayer {
    fn open_consumer(&self, name: &str) -> Option<Result<Consumer>> {
        match remote::url::parse(name) {
            Ok(Some(url)) => Some(remote::attach_consumer(&url)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn may_produce(&self, name: &str) -> Result<()> {
        match remote::url::parse(name)? {
            Some(_) => Err(Error::new(
                libc::EINVAL,
                format!("cannot produce into {name}: a producer must run on the ring's own host"),
            )),
            None => Ok(()),
        }
    }

    fn created(&self, ring: &str) -> Result<()> {
        master::registered(ring)
    }

    fn removing(&self, ring: &str) -> Result<()> {
        master::unregistering(ring)
    }

    fn attached(&self, ring: &str, role: Role) -> Result<()> {
        master::connected(ring, role)
    }

    fn detaching(&self, ring: &str, role: Role) -> Result<()> {
        master::disconnecting(ring, role)
    }
}

impl Idle for Revival {
    fn idle(&mut self, orphaned: &dyn Fn() -> bool) {
        self.tick(orphaned);
    }
}
