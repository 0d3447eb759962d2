//! A fake daemon that floods its client: what the hostile-peer tests of both clients
//! share.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{Receiver, channel};

/// A server that reads one request line, answers `head`, then `body` over and over as
/// fast as the client reads, up to `cap` bytes, then `tail`; reports how many bytes it
/// got rid of before the client hung up (or the cap).
pub fn flooding_server(head: &[u8], body: Vec<u8>, tail: &'static [u8], cap: usize) -> (SocketAddr, Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    let (report, sent) = channel();
    let mut batch = head.to_vec();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let mut request = String::new();
        let Ok(reader) = stream.try_clone() else { return };
        let _ = BufReader::new(reader).read_line(&mut request);
        let mut writer = stream;
        let mut total = 0;
        while total < cap {
            while batch.len() < 1 << 20 {
                batch.extend_from_slice(&body);
            }
            if writer.write_all(&batch).is_err() {
                break;
            }
            total += batch.len();
            batch.clear();
        }
        let _ = writer.write_all(tail);
        let _ = report.send(total);
    });
    (addr, sent)
}
