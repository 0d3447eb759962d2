"""PortManager against a daqportmgr of our own: allocate, list, find_server, release."""

from __future__ import annotations

import errno
import gc
import getpass
import signal
import socket
import time

import pytest

import daqflow
from conftest import PortManagerDaemon, python_child, read_line


def listed(daemon: PortManagerDaemon) -> list:
    with daqflow.PortManager(port=daemon.port) as pm:
        return pm.list()


def wait_until_gone(daemon: PortManagerDaemon, port: int, limit: float = 10) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(a.port != port for a in listed(daemon)):
            return True
        time.sleep(0.05)
    return False


def test_allocate_list_find(portmgr: PortManagerDaemon) -> None:
    me = getpass.getuser()
    with daqflow.PortManager("localhost", portmgr.port) as pm:
        assert pm.usable and repr(pm) == "<daqflow.PortManager open>"
        a = pm.allocate("pyt-service")
        b = pm.allocate("pyt-service")
        assert a != b and 30001 <= a <= 31000
        mine = {(x.port, x.application) for x in pm.list() if x.user == me and x.port in (a, b)}
        # The second of one name is listed with _1, whichever the server lists first.
        assert {name for _, name in mine} == {"pyt-service", "pyt-service_1"} and len(mine) == 2
        first = next(port for port, name in mine if name == "pyt-service")
        assert pm.find_server("pyt-service") == first
        assert pm.find_server("pyt-service", user=me) == first
        assert pm.find_server("pyt-service_1") == a + b - first
        with pytest.raises(daqflow.NotFoundError) as e:
            pm.find_server("pyt-service", user="nobody-at-all")
        assert e.value.errno == errno.ENOENT
        with pytest.raises(daqflow.NotFoundError):
            pm.find_server("no-such-service")
    assert not pm.usable and repr(pm) == "<daqflow.PortManager closed>"
    assert wait_until_gone(portmgr, a) and wait_until_gone(portmgr, b)
    for call in (pm.list, lambda: pm.allocate("x"), lambda: pm.find_server("x")):
        with pytest.raises(ValueError):
            call()
    pm.close()


def test_the_port_file_gives_the_default_port(portmgr: PortManagerDaemon, monkeypatch) -> None:
    monkeypatch.setenv("DAQPORTMGR_PORTFILE", portmgr.portfile)
    with daqflow.PortManager() as pm:
        port = pm.allocate("pyt-default")
        assert pm.find_server("pyt-default") == port


def test_a_collected_port_manager_gives_its_ports_back(portmgr: PortManagerDaemon) -> None:
    pm = daqflow.PortManager(port=portmgr.port)
    port = pm.allocate("pyt-collected")
    assert any(a.port == port for a in listed(portmgr))
    del pm
    gc.collect()
    assert wait_until_gone(portmgr, port)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_the_port_is_freed_when_the_python_process_ends(portmgr: PortManagerDaemon, how: str) -> None:
    end = "" if how == "exit" else "import time; time.sleep(60)"
    child = python_child(
        f"import daqflow\npm = daqflow.PortManager(port={portmgr.port})\n"
        f"print(pm.allocate('pyt-child'), flush=True)\n{end}\n"
    )
    try:
        port = int(read_line(child, 20) or -1)
        if how == "sigkill":
            assert any(a.port == port for a in listed(portmgr))
            child.send_signal(signal.SIGKILL)
        child.wait(20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert port > 0 and wait_until_gone(portmgr, port)


def test_no_free_ports() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    daemon = PortManagerDaemon(["-ports", f"{free}-{free}"])
    try:
        with daqflow.PortManager(port=daemon.port) as pm:
            assert pm.allocate("pyt-one") == free
            with pytest.raises(daqflow.NoSpaceError) as e:
                pm.allocate("pyt-two")
            assert e.value.errno == errno.EADDRNOTAVAIL and e.value.strerror
    finally:
        daemon.stop()


def test_refused_names(portmgr: PortManagerDaemon) -> None:
    with daqflow.PortManager(port=portmgr.port) as pm:
        for bad in ("two\nlines", "tab\there", "x" * 5000):
            with pytest.raises(daqflow.Error) as e:
                pm.allocate(bad)
            assert e.value.errno == errno.EINVAL, bad
        with pytest.raises(daqflow.Error) as e:
            pm.allocate("nul\0byte")
        assert e.value.errno == errno.EINVAL
        assert pm.usable  # refused before sending: the connection and its ports stay


def test_connection_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed
    with pytest.raises(daqflow.ConnectionRefused) as e:
        daqflow.PortManager("127.0.0.1", closed_port)
    assert e.value.errno == errno.ECONNREFUSED and isinstance(e.value, ConnectionRefusedError)
    with pytest.raises(daqflow.Error) as e2:
        daqflow.PortManager("no-such-host.invalid", 30000)
    assert e2.value.errno == errno.EHOSTUNREACH
    for port in (0, -1, 65536):
        with pytest.raises(ValueError):
            daqflow.PortManager(port=port)
    with pytest.raises(ValueError):
        daqflow.PortManager(port=30000, timeout=-1)


def test_any_timeout_is_taken(portmgr: PortManagerDaemon) -> None:
    for timeout in (None, 0, 0.0001, 1e12, float("inf")):
        with daqflow.PortManager(port=portmgr.port, timeout=timeout) as pm:
            assert pm.list() is not None, timeout


def test_a_server_that_never_answers_times_out_and_the_handle_is_gone() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        pm = daqflow.PortManager("127.0.0.1", server.getsockname()[1], timeout=0.3)
        start = time.monotonic()
        with pytest.raises(daqflow.Timeout) as e:
            pm.list()
        assert 0.25 < time.monotonic() - start < 5 and e.value.errno == errno.ETIMEDOUT
        assert not pm.usable
        with pytest.raises(daqflow.BrokenConnection) as e2:
            pm.allocate("late")
        assert e2.value.errno == errno.EPIPE
        pm.close()


def test_a_server_speaking_nonsense() -> None:
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"WHAT IS THIS\r\n" * 3)
                time.sleep(1)

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        with daqflow.PortManager("127.0.0.1", server.getsockname()[1]) as pm:
            with pytest.raises(daqflow.CorruptError) as e:
                pm.allocate("x")
            assert e.value.errno == errno.EPROTO and e.value.strerror
        t.join(5)
