"""A C producer feeding a Python consumer and the reverse, each in its own process, every
byte checked, on rings small enough that items wrap round the end hundreds of times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import daqflow
from conftest import body, body_len, item_type, built_program, item, python_child, read_line

COUNT = 20_000


@pytest.mark.parametrize("fixed", [0, 56, 65528])
def test_c_producer_python_consumer(make_ring, fixed: int) -> None:
    df_items = built_program("df_items")
    name = make_ring(200_000 if fixed == 65528 else 20_000, 2)
    count = 500 if fixed == 65528 else COUNT
    seed = 17
    with daqflow.Consumer(name) as c:
        producer = subprocess.Popen([df_items, "produce", name, str(count), str(fixed), str(seed)],
                                    stderr=subprocess.PIPE)
        i = 0
        for kind, data in c.items(timeout=30):
            assert kind == item_type(i) and len(data) == body_len(fixed, i), i
            assert data == body(fixed, seed, i), i
            i += 1
            if i == count:
                break
        _, err = producer.communicate(timeout=30)
        assert producer.returncode == 0, err.decode()
        assert i == count and c.available() == 0


def test_python_producer_c_consumer(make_ring) -> None:
    """Every other item put() as bytes, the rest written in place through reserve()."""
    df_items = built_program("df_items")
    name = make_ring(20_000, 2)
    seed = 3
    consumer = subprocess.Popen([built_program("df_items"), "consume", name, str(COUNT), "0", str(seed)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert read_line(consumer, 20) == "attached\n"
        with daqflow.Producer(name) as p:
            for i in range(COUNT):
                whole = item(item_type(i), body(0, seed, i))
                if i % 2:
                    p.put(whole, timeout=30)
                else:
                    with p.reserve(len(whole), timeout=30) as spans:
                        at = 0
                        for v in spans:
                            v[:] = whole[at : at + len(v)]
                            at += len(v)
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err.decode()
    assert out.decode().startswith("items/s"), df_items


WAITS = {
    "get": "c = daqflow.Consumer(name); print('waiting', flush=True); c.get(10)",
    "items": "c = daqflow.Consumer(name); print('waiting', flush=True); list(c.items())",
    "borrow": "c = daqflow.Consumer(name); print('waiting', flush=True); c.borrow(10).__enter__()",
    "put": "p = daqflow.Producer(name); c = daqflow.Consumer(name); p.put(bytes(p.available()));"
           "print('waiting', flush=True); p.put(b'x')",
}


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_ctrl_c_interrupts_a_wait(ring: str, wait: str) -> None:
    child = python_child(f"import daqflow, sys\nname = {ring!r}\ntry:\n    {WAITS[wait]}\n"
                         "except KeyboardInterrupt:\n    print('interrupted', flush=True); sys.exit(3)\n")
    try:
        assert read_line(child, 20) == "waiting\n", child.stderr.read().decode() if child.poll() is not None else ""
        time.sleep(0.3)  # into the C call's wait
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 3 and out == b"interrupted\n", err.decode()
    assert took < 2, took
    assert daqflow.usage(ring).consumers == []  # the slot went with the process


def test_one_library_per_process() -> None:
    """The package loads the libdaqflow.so.1 the loader finds (the one C code in the same
    process gets), unless DAQFLOW_LIBRARY names another file."""
    import daqflow._lib as lib

    maps = open("/proc/self/maps").read()
    loaded = {line.split()[-1] for line in maps.splitlines() if "libdaqflow" in line}
    assert len(loaded) == 1, loaded
    if os.environ.get("DAQFLOW_STAGE") and not os.environ.get("DAQFLOW_LIBRARY"):
        assert next(iter(loaded)).startswith(os.environ["DAQFLOW_STAGE"]), loaded
    path = next(iter(loaded))
    child = subprocess.run([sys.executable, "-c", "import daqflow; print(daqflow.library_version())"],
                           env={**os.environ, "DAQFLOW_LIBRARY": path}, capture_output=True, timeout=30)
    assert child.returncode == 0 and child.stdout.strip() == lib.lib.daqflow_version()
    child = subprocess.run([sys.executable, "-c", "import daqflow"], capture_output=True, timeout=30,
                           env={**os.environ, "DAQFLOW_LIBRARY": "/nonexistent/libdaqflow.so.1"})
    assert child.returncode != 0 and b"DAQFLOW_LIBRARY=/nonexistent/libdaqflow.so.1" in child.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("DAQFLOW_LIBRARY", "LD_LIBRARY_PATH")}
    child = subprocess.run([sys.executable, "-c", "import daqflow"], capture_output=True, timeout=30, env=env)
    if child.returncode != 0:  # no installed copy on this host: the message says what to do
        assert b"DAQFLOW_LIBRARY" in child.stderr and b"ldconfig" in child.stderr
