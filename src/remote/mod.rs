//! Rings on other hosts: `tcp://host/ring`.
//!
//! A consumer of a remote ring reads a local proxy ring named `<fully qualified
//! host>.<ring>`, as NSCLDAQ names it; one feeder process per (host, ring) copies the
//! remote ring's data into it (see `feeder`). The library side is `attach_consumer`,
//! reached from `Consumer::attach` for any name that is a `tcp://` URL.

pub mod feeder;
pub mod master;
pub mod framing;
pub mod revive;
pub mod source;
pub mod spawn;
pub mod url;

use crate::error::Result;
use crate::ring::{self, Consumer, CreateOptions};

pub use url::RingUrl;

/// Attaches a consumer to the ring `url` names: the ring itself when the host is this
/// one, else the proxy ring, starting its feeder if nobody feeds it.
pub fn attach_consumer(url: &RingUrl) -> Result<Consumer> {
    let resolved = url::resolve(&url.host)?;
    if url::is_local(&url.host, &resolved) {
        return Consumer::attach(&url.ring);
    }
    let proxy = url::proxy_name(&resolved.canonical, &url.ring)?;
    let created = match ring::create(&proxy, CreateOptions::default()) {
        Ok(()) => true,
        Err(e) if e.errno() == libc::EEXIST => false,
        Err(e) => return Err(e),
    };
    // Attached before the feeder starts, so we see its very first item.
    let mut consumer = Consumer::attach(&proxy)?;
    let plan = feeder::Plan { host: url.host.clone(), portmgr_port: url.portmgr_port, ring: url.ring.clone(), proxy };
    if ring::usage(&plan.proxy)?.producer_pid <= 0 {
        if let Err(e) = spawn::start_feeder(&plan) {
            drop(consumer);
            // A proxy made just now for a ring that cannot be fed is debris, unless
            // someone else has started using it meanwhile.
            if created && ring::usage(&plan.proxy).is_ok_and(|u| u.producer_pid <= 0 && u.consumers.is_empty()) {
                let _ = ring::remove(&plan.proxy);
            }
            return Err(e);
        }
    }
    // The feeder may die later: the consumer restarts it while it waits for data.
    consumer.revive_with(revive::Revival::new(plan));
    Ok(consumer)
}
