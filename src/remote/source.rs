//! The network side of a feeder: a ring's byte stream from another host's ring master
//! (`REMOTE ring`, see `crate::ringmaster::Client::remote`), made safe to wait on.
//!
//! Works with NSCLDAQ's RingMaster as with ours: after `OK BINARY FOLLOWS` the stream
//! is the ring's raw bytes as a new consumer sees them, with no framing of its own.

use std::io::{self, IoSliceMut, Read};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};

use crate::error::{Error, Result};
use crate::portmgr::protocol::DEFAULT_LISTEN_PORT;
use crate::ringmaster::Client;

/// Dead-peer detection on an idle stream: the first probe after this much silence ...
const KEEPALIVE_IDLE_S: u32 = 5;
/// ... then one probe every this many seconds ...
const KEEPALIVE_INTERVAL_S: u32 = 2;
/// ... and the connection is declared dead after this many unanswered probes.
const KEEPALIVE_PROBES: u32 = 3;

/// A ring's byte stream from another host.
pub struct Source {
    stream: TcpStream,
}

impl Source {
    /// Asks `host`'s ring master for `ring`'s data; `timeout` bounds every step. The
    /// port manager of another host is found at `portmgr_port`, else at the standard
    /// port (our own port file says nothing about theirs).
    pub fn open(host: &str, portmgr_port: Option<u16>, ring: &str, timeout: Duration) -> Result<Source> {
        let master = Client::locate(host, Some(portmgr_port.unwrap_or(DEFAULT_LISTEN_PORT)), timeout)?;
        let server = master.server();
        let stream = master.remote(ring)?;
        keepalive(&stream).map_err(|e| Error::sys(e, format!("setting keepalive on the stream from {server}")))?;
        Ok(Source { stream })
    }

    /// Bounds each read, so a quiet stream still returns control (WouldBlock) now and then.
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(timeout)).map_err(|e| Error::io(&e, "setting a read timeout"))
    }

    /// Reads stream bytes into `bufs`.
    pub fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.stream.read_vectored(bufs)
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
