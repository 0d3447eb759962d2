//! Host names: what one resolves to (its canonical name and addresses, with the system
//! resolver bounded in time), and whether it is this host. Shared by the `tcp://` ring
//! names (`remote`) and the ring master client, below both.

use std::ffi::CString;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;

/// What a host name resolves to: its canonical name (lower case) and its addresses.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub canonical: String,
    pub addresses: Vec<IpAddr>,
}

/// Resolves `host` with the system resolver (/etc/hosts, DNS ...). An address is
/// turned back into a name when the resolver knows one, so `10.0.0.1` and `daq1` agree.
pub fn resolve(host: &str) -> Result<Resolved> {
    let (canonical, addresses) = getaddrinfo(host)?;
    let canonical = match host.parse::<IpAddr>() {
        Ok(ip) => reverse(ip).unwrap_or(canonical),
        Err(_) => canonical,
    };
    Ok(Resolved { canonical: canonical.to_ascii_lowercase(), addresses })
}

/// [`resolve`] and [`is_local`] within `timeout` (`ETIMEDOUT` after it): the system
/// resolver has no time limit of its own, and a name server that never answers costs it
/// tens of seconds.
pub fn resolve_within(host: &str, timeout: Duration) -> Result<(Resolved, bool)> {
    let name = host.to_string();
    bounded(&format!("resolving {host}"), timeout, move || {
        let resolved = resolve(&name)?;
        let local = is_local(&name, &resolved);
        Ok((resolved, local))
    })
}

/// Runs `job` (a resolver call) on a thread of its own and waits at most `wait` for it;
/// a job that takes longer is abandoned, to finish and end on its own.
pub fn bounded<T: Send + 'static>(
    what: &str,
    wait: Duration,
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tell, hear) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("daqflow-resolve".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _ = tell.send(job());
        })
        .map_err(|e| Error::io(&e, format!("{what}: cannot start a thread")))?;
    match hear.recv_timeout(wait) {
        Ok(done) => done,
        Err(_) => Err(Error::new(libc::ETIMEDOUT, format!("{what}: no answer within {} ms", wait.as_millis()))),
    }
}

/// Whether `host` is this host: `localhost`, one of our own names, or a name whose
/// address is a loopback address or one of our interfaces' addresses.
pub fn is_local(host: &str, resolved: &Resolved) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().starts_with("localhost.") {
        return true;
    }
    if let Some(me) = hostname() {
        let me = me.to_ascii_lowercase();
        let my_canonical = getaddrinfo(&me).map(|(c, _)| c.to_ascii_lowercase()).unwrap_or_default();
        if host.eq_ignore_ascii_case(&me) || resolved.canonical == me || resolved.canonical == my_canonical {
            return true;
        }
    }
    let mine = local_addresses().unwrap_or_default();
    resolved.addresses.iter().any(|ip| ip.is_loopback() || mine.contains(ip))
}

/// This host's name as the kernel has it (the UTS name).
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok().map(|name| name.to_string_lossy().into_owned())
}

/// This host's interface addresses; `None` when they cannot be listed.
fn local_addresses() -> Option<Vec<IpAddr>> {
    let ifaces = nix::ifaddrs::getifaddrs().ok()?;
    Some(ifaces.filter_map(|i| i.address).filter_map(|a| sys::ip_of(&a)).collect())
}

fn getaddrinfo(host: &str) -> Result<(String, Vec<IpAddr>)> {
    let unresolved = |why: String| Error::new(libc::EHOSTUNREACH, format!("cannot resolve host {host}: {why}"));
    let c_host = CString::new(host).map_err(|_| unresolved("the name contains a NUL".into()))?;
    let (canonical, addresses) = sys::getaddrinfo(&c_host).map_err(unresolved)?;
    Ok((canonical.unwrap_or_else(|| host.to_string()), addresses))
}

/// The name the resolver gives an address, if it knows one.
fn reverse(ip: IpAddr) -> Option<String> {
    sys::getnameinfo(ip)
}

/// One of this host's own addresses (a client here may connect from any of them).
pub fn is_this_hosts(ip: IpAddr) -> bool {
    // Unknown: taken as this host's, which grants less than another host gets.
    local_addresses().is_none_or(|mine| mine.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        for host in ["localhost", "127.0.0.1", "::1"] {
            let r = resolve(host).unwrap();
            assert!(is_local(host, &r), "{host}");
        }
        let me = hostname().unwrap();
        let r = resolve(&me).unwrap();
        assert!(is_local(&me, &r), "{me}");
        // 203.0.113.0/24 is reserved for documentation (CI hosts may live on 192.0.2.0/24).
        let r = resolve("203.0.113.7").unwrap();
        assert!(!is_local("203.0.113.7", &r));
    }
}
