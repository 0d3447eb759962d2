//! How the demo's consumers find the producer: the producer allocates a port from the
//! port manager under a service name and serves the ring's name on it; consumers look
//! the service up (`find_server`, what `portmgr_find_server` wraps), connect, and read
//! the name. The port manager is found through $DAQPORTMGR_PORTFILE, as any client would.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use daqflow::portmgr::Client;

/// A producer's advertised service: holds the port (the connection to the port manager
/// stays open) and answers every connection with the ring's name.
pub struct Advert {
    _portmgr: Client,
}

pub fn advertise(service: &str, ring: &str) -> Result<Advert, String> {
    // Another port manager (another demo, another user's) may have handed out the same
    // port a moment ago, before its server bound it. Asking again on a new connection
    // (closing the old one releases the lost port, which must not stay advertised under
    // this service's name) gets another: ours skips ports in use.
    let mut tries = 0;
    let (portmgr, listener) = loop {
        let mut portmgr = Client::connect(None, None).map_err(|e| format!("port manager: {e}"))?;
        let port = portmgr.allocate(service).map_err(|e| format!("allocating a port for {service}: {e}"))?;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break (portmgr, listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => tries += 1,
            Err(e) => return Err(format!("listening on port {port}: {e}")),
        }
    };
    let reply = format!("{ring}\n");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    Ok(Advert { _portmgr: portmgr })
}

/// Finds `service` at the port manager (waiting for it to appear) and asks it for the
/// ring's name.
pub fn find_ring(service: &str, wait: Duration) -> Result<(u16, String), String> {
    let deadline = Instant::now() + wait;
    // A service is listed from the moment its port is allocated, a little before its
    // server listens: a refused connection is retried like a service not yet listed.
    let (port, stream) = loop {
        let found = Client::connect(None, None).and_then(|mut pm| pm.find_server(service, None));
        let error = match found {
            Ok(port) => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break (port, stream),
                Err(e) => format!("connecting to {service} at {port}: {e}"),
            },
            Err(e) => format!("service {service} never appeared: {e}"),
        };
        if Instant::now() > deadline {
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stream.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut ring = String::new();
    BufReader::new(stream).read_line(&mut ring).map_err(|e| format!("reading from {service}: {e}"))?;
    Ok((port, ring.trim().to_string()))
}
