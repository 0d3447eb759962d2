//! The network side of a feeder: finding a host's ring master through its port
//! manager and asking it for a ring's byte stream (`REMOTE ring`).
//!
//! Works with NSCLDAQ's RingMaster as with ours: after `OK BINARY FOLLOWS` the stream
//! is the ring's raw bytes as a new consumer sees them, with no framing of its own.

use std::io::{self, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};

use crate::error::{Error, Result};
use crate::portmgr::Client as PortManager;
use crate::portmgr::server::DEFAULT_LISTEN_PORT;

/// The service name ring masters allocate their port under.
pub const SERVICE: &str = "RingMaster";
/// Longest reply line before the binary stream.
const MAX_REPLY: usize = 4096;
/// Dead-peer detection on an idle stream: the first probe after this much silence ...
const KEEPALIVE_IDLE_S: u32 = 5;
/// ... then one probe every this many seconds ...
const KEEPALIVE_INTERVAL_S: u32 = 2;
/// ... and the connection is declared dead after this many unanswered probes.
const KEEPALIVE_PROBES: u32 = 3;

/// A ring's byte stream from another host.
pub struct Source {
    stream: TcpStream,
    /// Stream bytes that arrived with the reply line.
    early: Vec<u8>,
}

impl Source {
    /// Asks `host`'s ring master for `ring`'s data; `timeout` bounds every step.
    pub fn open(host: &str, portmgr_port: Option<u16>, ring: &str, timeout: Duration) -> Result<Source> {
        let port = locate(host, portmgr_port, timeout)?;
        let mut stream = connect(host, port, timeout)?;
        let context = format!("asking the ring master at {host}:{port} for ring {ring}");
        stream.set_write_timeout(Some(timeout)).map_err(|e| Error::io(&e, &context))?;
        stream.write_all(format!("REMOTE {ring}\n").as_bytes()).map_err(|e| Error::io(&e, &context))?;
        let (line, early) = read_reply(&mut stream, timeout, &context)?;
        let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
        if line != "OK BINARY FOLLOWS" {
            let errno = if line.contains("does not exist") {
                libc::ENOENT
            } else if line.starts_with("ERROR") || line.starts_with("FAIL") {
                libc::EACCES
            } else {
                libc::EPROTO
            };
            return Err(Error::new(errno, format!("{context}: the ring master answered {line:?}")));
        }
        keepalive(&stream).map_err(|e| Error::sys(e, &context))?;
        Ok(Source { stream, early })
    }

    /// Bounds each read, so a quiet stream still returns control (WouldBlock) now and then.
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(timeout)).map_err(|e| Error::io(&e, "setting a read timeout"))
    }

    /// Reads stream bytes into `bufs`, the early ones first.
    pub fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        if self.early.is_empty() {
            return self.stream.read_vectored(bufs);
        }
        let mut done = 0;
        for buf in bufs.iter_mut() {
            let n = buf.len().min(self.early.len() - done);
            buf[..n].copy_from_slice(&self.early[done..done + n]);
            done += n;
        }
        self.early.drain(..done);
        Ok(done)
    }
}

/// The port of `host`'s ring master: the first `RingMaster` its port manager lists,
/// whoever runs it (as NSCLDAQ clients choose).
pub fn locate(host: &str, portmgr_port: Option<u16>, timeout: Duration) -> Result<u16> {
    let port = portmgr_port.unwrap_or(DEFAULT_LISTEN_PORT);
    let mut manager = PortManager::connect_timeout(Some(host), Some(port), Some(timeout))?;
    manager
        .list()?
        .into_iter()
        .find(|a| a.application == SERVICE)
        .map(|a| a.port)
        .ok_or_else(|| Error::new(libc::ECONNREFUSED, format!("no {SERVICE} is registered with the port manager of {host}")))
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(libc::EHOSTUNREACH, format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = Error::new(libc::EHOSTUNREACH, format!("{host} has no address"));
    for addr in addresses {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Error::io(&e, format!("cannot connect to the ring master at {addr}")),
        }
    }
    Err(last)
}

/// The reply line (without LF) and whatever stream bytes came after it.
fn read_reply(stream: &mut TcpStream, timeout: Duration, context: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            let early = got.split_off(end + 1);
            got.pop();
            return Ok((got, early));
        }
        if got.len() > MAX_REPLY {
            return Err(Error::new(libc::EPROTO, format!("{context}: no reply line in the first {MAX_REPLY} bytes")));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(libc::ETIMEDOUT, format!("{context}: no reply within {} ms", timeout.as_millis())));
        }
        stream.set_read_timeout(Some(left)).map_err(|e| Error::io(&e, context))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Error::new(libc::ECONNRESET, format!("{context}: the ring master closed the connection"))),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(Error::io(&e, context)),
        }
    }
}

/// A peer that vanishes (host down, link cut) leaves a reader waiting forever; TCP
/// keepalive probes turn that into an error after about 11 s of silence.
fn keepalive(stream: &TcpStream) -> nix::Result<()> {
    setsockopt(stream, sockopt::KeepAlive, &true)?;
    setsockopt(stream, sockopt::TcpKeepIdle, &KEEPALIVE_IDLE_S)?;
    setsockopt(stream, sockopt::TcpKeepInterval, &KEEPALIVE_INTERVAL_S)?;
    setsockopt(stream, sockopt::TcpKeepCount, &KEEPALIVE_PROBES)?;
    Ok(())
}
