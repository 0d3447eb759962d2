//! Rings on other hosts: `tcp://host/ring`.
//!
//! A consumer of a remote ring reads a local proxy ring named `<fully qualified
//! host>.<ring>`, as NSCLDAQ names it, or its own `<host>.<ring>.uid<uid>` when that one
//! is not trusted (see `proxy`); one feeder process per proxy copies the remote ring's
//! data into it (see `feeder`). The library side is `attach_consumer`,
//! reached from `Consumer::attach` for any name that is a `tcp://` URL once the client
//! layer is installed (`crate::client`).

pub mod feeder;
pub mod framing;
pub mod geometry;
pub mod master;
pub mod proxy;
pub mod revive;
pub mod source;
pub mod spawn;
pub mod url;

use crate::error::{Error, Result};
use crate::ring::{self, Consumer, CreateOptions};
use crate::trust::Trust;

pub use url::RingUrl;

/// Bound on finding out which host a URL names (the system resolver has none).
const RESOLVE_TIMEOUT: std::time::Duration = feeder::STEP_TIMEOUT;
/// Bound on asking another host's ring master for its rings' usage.
const USAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Usage of the ring `url` names: the local ring's when the host is this one, else what
/// that host's ring master LISTs for it (the same figures; LIST does not say which slot
/// a consumer holds, so every `slot` is `u32::MAX`). `ENOENT` when it lists no such ring.
pub fn usage(url: &RingUrl) -> Result<ring::Usage> {
    let (_, local) = crate::hosts::resolve_within(&url.host, RESOLVE_TIMEOUT)?;
    if local {
        return ring::usage(&url.ring);
    }
    let port = url.portmgr_port.unwrap_or(crate::portmgr::protocol::DEFAULT_LISTEN_PORT);
    let mut master = crate::ringmaster::Client::locate(&url.host, Some(port), USAGE_TIMEOUT)?;
    let listing = master.list()?;
    let Some((_, found)) = listing.into_iter().find(|(name, _)| *name == url.ring) else {
        return Err(Error::new(
            libc::ENOENT,
            format!(
                "the ring master of {} lists no ring {} (there is none, or it was never registered there)",
                url.host, url.ring
            ),
        ));
    };
    Ok(ring::Usage {
        data_bytes: found.data_bytes,
        put_space: found.put_space,
        max_consumers: found.max_consumers,
        producer_pid: found.producer_pid,
        max_get: found.max_get,
        min_get: found.min_get,
        consumers: found
            .consumers
            .into_iter()
            .map(|(pid, backlog)| ring::ConsumerUsage { slot: u32::MAX, pid, backlog })
            .collect(),
    })
}

/// Attaches a consumer to the ring `url` names: the ring itself when the host is this
/// one, else a proxy ring this process trusts (see `proxy`), starting its feeder if
/// nobody feeds it.
pub fn attach_consumer(url: &RingUrl) -> Result<Consumer> {
    let (resolved, local) = crate::hosts::resolve_within(&url.host, RESOLVE_TIMEOUT)?;
    if local {
        return Consumer::attach(&url.ring);
    }
    let trust = Trust::load();
    let mut refused = Vec::new();
    for name in proxy::candidates(&resolved.canonical, &url.ring)? {
        match attach_proxy(url, name, &trust)? {
            Ok(consumer) => return Ok(consumer),
            Err(why) => refused.push(why),
        }
    }
    Err(Error::new(
        libc::EPERM,
        format!(
            "refusing to read tcp://{}/{} through a proxy ring someone else controls: {}",
            url.host,
            url.ring,
            refused.join("; ")
        ),
    ))
}

/// Attaches to the proxy `name` when it can be trusted: `Ok(Err(why))` when it cannot.
fn attach_proxy(url: &RingUrl, name: String, trust: &Trust) -> Result<std::result::Result<Consumer, String>> {
    let created = match ring::create(&name, CreateOptions { mode: proxy::PROXY_MODE, ..geometry::create_options() }) {
        Ok(()) => true,
        Err(e) if e.errno() == libc::EEXIST => false,
        Err(e) => return Err(e),
    };
    // Looked at before attaching (a hostile object gets nothing of ours) and again after,
    // through the object attached to: the name may have changed hands in between.
    if let Some(why) = proxy::untrusted_object(&name, trust)? {
        return Ok(Err(why));
    }
    // Attached before the feeder starts, so we see its very first item.
    let mut consumer = match Consumer::attach(&name) {
        Ok(consumer) => consumer,
        // Another trusted account's proxy (made 0600): not ours to read.
        Err(e) if e.errno() == libc::EACCES => return Ok(Err(e.message().to_string())),
        Err(e) => return Err(e),
    };
    if let Some(why) = proxy::untrusted_object(&name, trust)? {
        return Ok(Err(why));
    }
    if !consumer.still_named() {
        return Ok(Err(format!("proxy ring {name} was replaced while attaching")));
    }
    let (host, ring) = (url.host.clone(), url.ring.clone());
    let plan = feeder::Plan { host, portmgr_port: url.portmgr_port, ring, proxy: name };
    match proxy::feeder_of(&plan.proxy, &plan.ring, trust)? {
        proxy::Feeder::Trusted => {}
        proxy::Feeder::Untrusted(why) => return Ok(Err(why)),
        proxy::Feeder::None => {
            // Data put since we attached came from a producer that left before it could
            // be looked at (only the proxy's owner or root could have put it, but not
            // necessarily a feeder of this ring).
            if consumer.available()? > 0 {
                let why =
                    format!("proxy ring {} was written by a producer that left before it could be checked", plan.proxy);
                return Ok(Err(why));
            }
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
    }
    // The feeder may die later: the consumer restarts it while it waits for data.
    consumer.on_idle(revive::Revival::new(plan));
    Ok(Ok(consumer))
}
