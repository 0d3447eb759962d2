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
    let mut portmgr = Client::connect(None, None).map_err(|e| format!("port manager: {e}"))?;
    // Another port manager (another demo) may have handed out the same port a moment
    // ago, before its server bound it; ours skips ports in use, so asking again gets
    // one that is free. The port lost stays allocated to this connection, harmlessly.
    let mut tries = 0;
    let listener = loop {
        let port = portmgr.allocate(service).map_err(|e| format!("allocating a port for {service}: {e}"))?;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break listener,
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
    let port = loop {
        let found = Client::connect(None, None).and_then(|mut pm| pm.find_server(service, None));
        match found {
            Ok(port) => break port,
            Err(e) if Instant::now() > deadline => return Err(format!("service {service} never appeared: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting to {service} at {port}: {e}"))?;
    stream.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut ring = String::new();
    BufReader::new(stream).read_line(&mut ring).map_err(|e| format!("reading from {service}: {e}"))?;
    Ok((port, ring.trim().to_string()))
}
