//! Which rings the ring master LISTs: as NSCLDAQ's, those present when it started and
//! those REGISTERed since, not every ring in /dev/shm (NSCLDAQ's C++ `create` of an
//! existing ring that the ring master does not list adopts it; one it lists is EEXIST).

mod portmgr_support;
mod ringmaster_support;

use std::process::Command;

use ringmaster_support::{Master, TestRing, eventually};

const RINGBUFFER: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/ringbuffer");

#[test]
fn a_ring_made_behind_its_back_is_listed_once_registered() {
    let master = Master::start(&[]);
    // Made by this process, which does not find this ring master: never registered.
    let ring = TestRing::new("unreg", 65536, 4);
    assert!(!master.listed().contains(&ring.0), "an unregistered ring was listed");
    master.register(ring.s());
    assert!(master.listed().contains(&ring.0));
    master.connect().ask(&format!("UNREGISTER {}\n", ring.s()), "OK\r\n");
    assert!(!master.listed().contains(&ring.0), "an unregistered ring was listed");
    master.wait_log(&format!("UNREGISTER: ring {}", ring.s()));
    // Registered, then removed without a word: forgotten at the next LIST.
    master.register(ring.s());
    std::fs::remove_file(format!("/dev/shm/{}", ring.s())).unwrap();
    assert!(!master.listed().contains(&ring.0));
}

#[test]
fn rings_present_at_its_start_are_known() {
    let ring = TestRing::new("early", 65536, 4);
    let master = Master::start(&[]);
    assert!(master.listed().contains(&ring.0));
    master.wait_log("rings present at start added to the known rings");
}

#[test]
fn a_daqflow_create_registers_and_a_remove_unregisters() {
    // The tool, told where this test's port manager is, finds the ring master as any
    // daqflow program on that host would.
    let master = Master::start(&[]);
    let name = format!("rm-tool-{}", std::process::id());
    let ring = TestRing(name.clone()); // removed on drop whatever happens
    let tool = |args: &[&str]| {
        let out = Command::new(RINGBUFFER)
            .args(args)
            .env("DAQPORTMGR_PORTFILE", master.portmgr.path("listen.port"))
            .env_remove("DAQFLOW_RINGMASTER")
            .output()
            .unwrap();
        assert!(out.status.success(), "ringbuffer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    tool(&["create", "--datasize=64k", "--maxconsumers=2", &name]);
    assert!(master.listed().contains(&name), "a daqflow create did not register");
    tool(&["delete", &name]);
    assert!(!master.listed().contains(&name));
    master.wait_log(&format!("UNREGISTER: ring {name}"));
    drop(ring);
}

#[test]
fn rings_made_while_the_port_manager_forgot_it_are_learnt_on_registering_again() {
    let mut master = Master::start(&[]);
    master.wait_log("rings present at start added to the known rings");
    assert!(master.portmgr.stop().success());
    // No port manager lists the ring master: a creator now cannot tell it.
    let ring = TestRing::new("meanwhile", 65536, 4);
    let port = master.portmgr.port;
    let free = ringmaster_support::free_port();
    let _again = portmgr_support::Daemon::start(&format!("{free}-{free}"), &["-listen", &port.to_string()]);
    eventually("registration after a port manager restart", || ringmaster_support::ringmaster_port(port).is_some());
    master.port = ringmaster_support::ringmaster_port(port).unwrap();
    assert!(master.listed().contains(&ring.0), "{}", master.log_text());
}

#[test]
fn debug_is_accepted_silently_and_keeps_the_connection() {
    let master = Master::start(&[]);
    let mut c = master.connect();
    // NSCLDAQ's daemon switches its debug log and answers nothing.
    c.send(b"DEBUG 0\nDEBUG 1\nDEBUG\n");
    c.ask("LIST\n", "OK\r\n");
    let _ = c.line();
    c.ask("CONNECT {x} producer 5 {c}\n", "OK\r\n");
    master.wait_log("\"DEBUG 0\" from 127.0.0.1: ignored");
}
