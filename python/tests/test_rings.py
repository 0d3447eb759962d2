"""The ring administration functions and their error paths."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest

import daqflow
from conftest import unique


def test_versions_are_the_crates() -> None:
    """The library loaded, the package and its pyproject.toml all say the crate's version."""
    root = Path(__file__).resolve().parents[2]
    cargo = re.search(r'^version = "(.*)"', (root / "Cargo.toml").read_text(), re.M)
    pyproject = re.search(r'^version = "(.*)"', (root / "python" / "pyproject.toml").read_text(), re.M)
    assert cargo and pyproject
    assert daqflow.library_version() == daqflow.__version__ == pyproject.group(1) == cargo.group(1)


def test_create_exists_list_usage_remove() -> None:
    name = unique("admin")
    assert not daqflow.exists(name)
    daqflow.create(name, 100_000, 7, mode=0o640)
    try:
        assert daqflow.exists(name)
        assert name in daqflow.list_rings()
        assert daqflow.list_rings() == sorted(daqflow.list_rings())
        u = daqflow.usage(name)
        assert u.data_bytes >= 100_000 and u.max_consumers == 7
        assert u.put_space == u.data_bytes - 1
        assert u.producer_pid is None and u.consumers == [] and u.max_get == u.min_get == 0
        assert stat.S_IMODE(os.stat(f"/dev/shm/{name}").st_mode) == 0o640
    finally:
        daqflow.remove(name)
    assert not daqflow.exists(name) and name not in daqflow.list_rings()


def test_create_defaults() -> None:
    name = unique("defaults")
    daqflow.create(name)
    try:
        u = daqflow.usage(name)
        assert u.data_bytes >= daqflow.DEFAULT_DATA_BYTES and u.max_consumers == daqflow.DEFAULT_MAX_CONSUMERS
        assert stat.S_IMODE(os.stat(f"/dev/shm/{name}").st_mode) == daqflow.DEFAULT_MODE
    finally:
        daqflow.remove(name)


def test_names_as_bytes_and_paths(ring: str) -> None:
    assert daqflow.exists(ring.encode())
    assert daqflow.usage(Path(ring)).max_consumers == 4


def test_create_taken(ring: str) -> None:
    with pytest.raises(daqflow.ExistsError) as e:
        daqflow.create(ring)
    assert e.value.errno == errno.EEXIST and isinstance(e.value, FileExistsError)
    assert ring in e.value.strerror


@pytest.mark.parametrize("bad", ["a/b", "with space", "x" * 300, ""])
def test_create_refuses_bad_names(bad: str) -> None:
    with pytest.raises(daqflow.Error) as e:
        daqflow.create(bad)
    assert e.value.errno == errno.EINVAL and e.value.strerror


def test_nul_in_a_name_is_refused_not_cut_short(ring: str) -> None:
    with pytest.raises(daqflow.Error) as e:
        daqflow.exists(ring + "\0tail")
    assert e.value.errno == errno.EINVAL and "NUL" in e.value.strerror
    with pytest.raises(daqflow.Error):
        daqflow.remove(ring + "\0")
    assert daqflow.exists(ring)


@pytest.mark.parametrize(
    "kwargs", [{"data_bytes": 0}, {"data_bytes": -5}, {"max_consumers": 0}, {"max_consumers": 2**21}, {"mode": -1},
               {"mode": 0o10000}]
)
def test_create_refuses_bad_numbers(kwargs: dict) -> None:
    name = unique("badnum")
    with pytest.raises(ValueError):
        daqflow.create(name, **kwargs)
    assert not daqflow.exists(name)


def test_create_too_big_for_the_library() -> None:
    name = unique("huge")
    with pytest.raises(daqflow.Error) as e:
        daqflow.create(name, 1 << 62)
    assert e.value.errno and e.value.strerror
    assert not daqflow.exists(name)


def test_missing_ring_errors() -> None:
    name = unique("missing")
    for call in (daqflow.remove, daqflow.usage, daqflow.disconnect_producer, daqflow.Producer, daqflow.Consumer):
        with pytest.raises(daqflow.NotFoundError) as e:
            call(name)
        assert e.value.errno == errno.ENOENT and name in e.value.strerror, call
    with pytest.raises(daqflow.NotFoundError):
        daqflow.disconnect_consumer(name, 0)
    with pytest.raises(daqflow.NotFoundError):
        daqflow.format(name)


def test_usage_lists_consumers_and_producer(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c1, daqflow.Consumer(ring) as c2:
        p.put(b"x" * 100)
        c2.get(40, min=40)
        u = daqflow.usage(ring)
        assert u.producer_pid == os.getpid()
        assert sorted((c.slot, c.backlog) for c in u.consumers) == sorted([(c1.slot, 100), (c2.slot, 60)])
        assert all(c.pid == os.getpid() for c in u.consumers)
        assert (u.max_get, u.min_get) == (100, 60)
        assert daqflow.usage(f"tcp://localhost/{ring}") == u


def test_format(ring: str) -> None:
    with daqflow.Consumer(ring):
        with pytest.raises(daqflow.BusyError) as e:
            daqflow.format(ring, 9)
        assert e.value.errno == errno.EBUSY
    daqflow.format(ring, 9)
    assert daqflow.usage(ring).max_consumers == 9
    with pytest.raises(ValueError):
        daqflow.format(ring, 0)


def test_disconnect_producer(ring: str) -> None:
    p = daqflow.Producer(ring)
    with pytest.raises(daqflow.AccessError) as e:
        daqflow.Producer(ring)
    assert e.value.errno == errno.EACCES
    daqflow.disconnect_producer(ring)
    assert daqflow.usage(ring).producer_pid is None
    with daqflow.Producer(ring):
        pass
    p.close()


def test_disconnect_consumer(ring: str) -> None:
    c = daqflow.Consumer(ring)
    daqflow.disconnect_consumer(ring, c.slot)
    assert daqflow.usage(ring).consumers == []
    c.close()
    for slot in (4, 2**32 - 1, -1, 2**40):
        with pytest.raises(daqflow.Error) as e:
            daqflow.disconnect_consumer(ring, slot)
        assert e.value.errno == errno.ERANGE, slot


def test_a_corrupt_header_is_an_error(ring: str) -> None:
    with open(f"/dev/shm/{ring}", "r+b") as f:
        f.seek(40)  # the data bytes and offsets: nonsense sizes
        f.write(b"\xff" * 40)
    with pytest.raises(daqflow.CorruptError) as e:
        daqflow.usage(ring)
    assert e.value.errno == errno.EBADMSG and ring in e.value.strerror
    with pytest.raises(daqflow.CorruptError):
        daqflow.Consumer(ring)


def test_a_ring_truncated_under_a_consumer_is_an_error_not_sigbus(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(b"before")
        os.truncate(f"/dev/shm/{ring}", 4096)
        with pytest.raises(daqflow.Error) as e:
            c.get(100, timeout=1)
            c.get(100, timeout=1)
        assert e.value.errno in (errno.EBADMSG, errno.ENOSPC) and "truncated" in e.value.strerror
