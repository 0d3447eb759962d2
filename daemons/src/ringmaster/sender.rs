//! The REMOTE sender: an ordinary consumer of the ring that writes everything it gets to
//! the peer's socket, straight from ring memory.
//!
//! Back-pressure is the ring's own: bytes are released from the ring only once the
//! socket took them, so a peer that stops reading stops this consumer, and the producer
//! then waits for it as for any slow consumer; nothing piles up in the daemon. The peer
//! leaving is seen as a failed send, a hang-up while the ring is idle, or (for a peer
//! that vanished with the link) TCP keepalive and the user timeout. A peer that is there
//! but keeps its receive window closed (acknowledging the kernel's probes, so neither
//! timeout fires) would hold the producer for ever: a send that makes no progress for
//! the stall timeout ends the stream and frees the slot.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, setsockopt, sockopt};

use daqflow::ring::Consumer;

/// The most handed to the socket in one go.
const CHUNK: u64 = 1024 * 1024;
/// How often a sender with nothing to do checks the peer and the stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(200);
/// How often an idle sender checks that its ring is still the one under that name.
const RING_CHECK: Duration = Duration::from_secs(1);
/// Dead-peer detection on an idle stream: probes after 10 s of silence, every 5 s, 3 of
/// them (a peer cut off is noticed within about 25 s).
const KEEPALIVE_IDLE: u32 = 10;
const KEEPALIVE_INTERVAL: u32 = 5;
const KEEPALIVE_COUNT: u32 = 3;
/// Sent data unacknowledged this long means the peer is gone (a cut link with data in
/// flight, where keepalive does not apply).
const USER_TIMEOUT_MS: u32 = 30_000;

/// Why the stream ended.
#[derive(Debug)]
pub enum End {
    PeerClosed,
    Stopped,
    /// The peer took nothing for this long with data waiting for it.
    Stalled(Duration),
    /// A socket or ring error, in words.
    Failed(String),
}

/// Tunes the socket for a long bulk stream to a peer that may vanish.
pub fn prepare(socket: &TcpStream) {
    // Each is an improvement, none a condition: a socket that refuses one still streams.
    let _ = setsockopt(socket, sockopt::KeepAlive, &true);
    let _ = setsockopt(socket, sockopt::TcpKeepIdle, &KEEPALIVE_IDLE);
    let _ = setsockopt(socket, sockopt::TcpKeepInterval, &KEEPALIVE_INTERVAL);
    let _ = setsockopt(socket, sockopt::TcpKeepCount, &KEEPALIVE_COUNT);
    let _ = setsockopt(socket, sockopt::TcpUserTimeout, &USER_TIMEOUT_MS);
    let _ = socket.set_nodelay(false);
    // Blocking sends wake up now and then so the stop flag and the peer are checked.
    let _ = socket.set_write_timeout(Some(IDLE_CHECK));
}

/// Has the peer hung up or sent something? Anything it sends is read and dropped (the
/// protocol has nothing more to say after REMOTE); end of file means it is gone.
fn peer_gone(socket: &TcpStream) -> bool {
    let mut fds = [PollFd::new(socket_fd(socket), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                return true;
            }
            let mut sink = [0u8; 4096];
            match recv(socket.as_raw_fd(), &mut sink, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n == 0,
                Err(e) => !matches!(e, Errno::EAGAIN | Errno::EINTR),
            }
        }
        Err(_) => false,
    }
}

fn socket_fd(socket: &TcpStream) -> std::os::fd::BorrowedFd<'_> {
    use std::os::fd::AsFd;
    socket.as_fd()
}

/// Streams the ring to the socket until the peer goes, `stop` is set, the ring is
/// removed (or replaced by a new one of the same name: this stream would never see its
/// data), the peer takes nothing for `stall` while data waits, or an error. Returns why,
/// and how many bytes were sent. The consumer is detached on return.
pub fn stream(mut consumer: Consumer, socket: &TcpStream, stop: &AtomicBool, stall: Duration) -> (End, u64) {
    let mut checked = Instant::now();
    let mut sent_total = 0u64;
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break End::Stopped;
        }
        let spans = match consumer.borrow(1, CHUNK, Some(IDLE_CHECK)) {
            Ok(spans) => spans,
            Err(e) if e.errno() == libc::ETIMEDOUT => {
                if peer_gone(socket) {
                    break End::PeerClosed;
                }
                if checked.elapsed() >= RING_CHECK {
                    checked = Instant::now();
                    if !consumer.still_named() {
                        break End::Failed(format!("ring {} was removed or replaced", consumer.name()));
                    }
                }
                continue;
            }
            Err(e) => break End::Failed(e.to_string()),
        };
        let borrowed: u64 = spans.iter().map(|s| s.len as u64).sum();
        let mut done = 0u64;
        let mut outcome = None;
        // Since the peer last took a byte (or since there was data for it to take).
        let mut progress = Instant::now();
        'spans: for span in spans {
            let mut off = 0usize;
            while off < span.len {
                if stop.load(Ordering::Relaxed) {
                    outcome = Some(End::Stopped);
                    break 'spans;
                }
                // SAFETY: the span lies inside the ring mapping, which outlives the
                // consumer we hold; the bytes are ours until released (the producer does
                // not write over unread data), and the kernel copies them through the
                // raw pointer, so no Rust reference to shared memory is formed.
                let n = unsafe {
                    libc::send(socket.as_raw_fd(), span.ptr.add(off).cast(), span.len - off, libc::MSG_NOSIGNAL)
                };
                if n > 0 {
                    off += n as usize;
                    done += n as u64;
                    progress = Instant::now();
                    continue;
                }
                let errno = nix::errno::Errno::last();
                match errno {
                    // Send timeout: the peer is slow (back-pressure) or gone.
                    nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR => {
                        if peer_gone(socket) {
                            outcome = Some(End::PeerClosed);
                            break 'spans;
                        }
                        if progress.elapsed() >= stall {
                            outcome = Some(End::Stalled(progress.elapsed()));
                            break 'spans;
                        }
                    }
                    nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET => {
                        outcome = Some(End::PeerClosed);
                        break 'spans;
                    }
                    e => {
                        outcome = Some(End::Failed(format!("sending to the peer failed: {}", e.desc())));
                        break 'spans;
                    }
                }
            }
        }
        sent_total += done;
        if let Err(e) = consumer.release(done) {
            break End::Failed(e.to_string());
        }
        if let Some(end) = outcome {
            break end;
        }
        debug_assert_eq!(done, borrowed);
    };
    let _ = consumer.detach();
    (end, sent_total)
}
