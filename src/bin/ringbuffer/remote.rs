//! `--host`: another host's rings come from its ring master's LIST. This host's own
//! names are served from /dev/shm directly, with no daemon.

use daqflow::Error;

use crate::rings::RingStatus;

/// Whether `host` names this host (then /dev/shm is read directly).
pub fn is_local(host: &str) -> bool {
    if matches!(host, "localhost" | "127.0.0.1" | "::1" | "localhost.localdomain") {
        return true;
    }
    let Some(me) = hostname() else { return false };
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    host.eq_ignore_ascii_case(&me) || (!host.contains('.') && short(host) == short(&me))
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the local buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// Every ring of `host`, as its ring master lists them, sorted by name.
pub fn status(host: &str) -> Result<Vec<RingStatus>, Error> {
    Err(Error::new(
        libc::EPROTONOSUPPORT,
        format!("--host={host}: asking another host's ring master is not available yet in this build"),
    ))
}
