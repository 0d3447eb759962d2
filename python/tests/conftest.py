"""Fixtures for the daqflow tests: unique rings, the C test program, a private port manager.

run.sh sets DAQFLOW_TEST_BIN (where df_items was built) and DAQFLOW_STAGE (the staged
install with daqportmgr, ringmaster and the feeder)."""

from __future__ import annotations

import itertools
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import daqflow

_counter = itertools.count()


def unique(prefix: str) -> str:
    return f"pyt-{prefix}-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def ring() -> Iterator[str]:
    """A fresh ring of 64 KiB and 4 consumer slots, removed afterwards."""
    name = unique("r")
    daqflow.create(name, 65536, 4)
    yield name
    if daqflow.exists(name):
        daqflow.remove(name)


@pytest.fixture
def make_ring() -> Iterator:
    """make_ring(data_bytes, max_consumers) -> name: rings removed afterwards."""
    made: List[str] = []

    def make(data_bytes: int = 65536, max_consumers: int = 4) -> str:
        name = unique("r")
        daqflow.create(name, data_bytes, max_consumers)
        made.append(name)
        return name

    yield make
    for name in made:
        if daqflow.exists(name):
            daqflow.remove(name)


def built_program(name: str) -> str:
    where = os.environ.get("DAQFLOW_TEST_BIN")
    if not where or not Path(where, name).exists():
        pytest.skip(f"{name} not built: run these tests with `make check-python` (python/tests/run.sh)")
    return str(Path(where, name))


def stage_program(relative: str) -> str:
    stage = os.environ.get("DAQFLOW_STAGE")
    if not stage or not Path(stage, relative).exists():
        pytest.skip(f"{relative} not staged: run these tests with `make check-python`")
    return str(Path(stage, relative))


# The item stream df_items produces and checks: item i has type item_type(i) and a body of
# body_len(fixed, i) bytes, i in its first 4, byte j >= 4 equal to body_byte(seed, i, j).
def item_type(i: int) -> int:
    """Never 0 in the low 16 bits, which the remote feeder (as NSCLDAQ) takes for the
    other byte order."""
    return 1 + i % 65535


def body_len(fixed: int, i: int) -> int:
    return fixed if fixed else 4 + ((i * 2654435761) % (1 << 32) >> 7) % 3000


def body(fixed: int, seed: int, i: int) -> bytes:
    n = body_len(fixed, i)
    tail = bytes((i * 131 + j * 7 + seed) & 0xFF for j in range(4, n))
    return struct.pack("<I", i) + tail


def item(kind: int, payload: bytes) -> bytes:
    return struct.pack("<II", len(payload) + 8, kind) + payload


def read_line(proc: subprocess.Popen, limit: float) -> str:
    """One line of a child's stdout within `limit` seconds ('' if it ends or stays silent)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    deadline = time.monotonic() + limit
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return line.decode()
        byte = os.read(fd, 1)
        if not byte:
            return line.decode()
        line += byte
    return line.decode()


def python_child(code: str, **kw) -> subprocess.Popen:
    """This interpreter running `code`, with this environment (the same library)."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


class PortManagerDaemon:
    """A daqportmgr of our own on a port the system picks, with its state in a temporary
    directory; stopped (SIGTERM) at the end of the test."""

    def __init__(self, extra: Optional[List[str]] = None) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="pyt-portmgr-")
        self.portfile = os.path.join(self.dir.name, "listen.port")
        args = [stage_program("bin/daqportmgr"), "-listen", "0", "-portfile", self.portfile,
                "-pidfile", os.path.join(self.dir.name, "pid"), "-log", os.path.join(self.dir.name, "log")]
        self.proc = subprocess.Popen(args + (extra or []), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        self.port = 0
        while time.monotonic() < deadline:
            try:
                self.port = int(Path(self.portfile).read_text().strip())
                with socket.create_connection(("localhost", self.port), timeout=1):
                    return
            except (OSError, ValueError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("daqportmgr did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


@pytest.fixture
def portmgr() -> Iterator[PortManagerDaemon]:
    daemon = PortManagerDaemon()
    yield daemon
    daemon.stop()
