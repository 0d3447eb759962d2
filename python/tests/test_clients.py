"""Producer and Consumer: every call, the buffer protocol, zero copy, errors, lifetimes."""

from __future__ import annotations

import array
import errno
import gc
import math
import time

import pytest

import daqflow


def fill_to_the_top(p: daqflow.Producer, c: daqflow.Consumer, leave: int) -> int:
    """Moves both pointers so that only `leave` bytes remain before the top of the ring;
    returns the ring's data size."""
    size = daqflow.usage(p.name).data_bytes
    step = size // 2
    moved = 0
    while moved < size - leave:
        n = min(step, size - leave - moved)
        p.put(bytes(n))
        c.skip(n)
        moved += n
    return size


def test_put_get_of_every_buffer_kind(ring: str) -> None:
    payloads = [b"bytes", bytearray(b"bytearray"), memoryview(b"0123456789")[2:7], array.array("I", [1, 2, 3])]
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        for data in payloads:
            p.put(data)
            assert c.get(100, timeout=5) == bytes(data)
        p.put(b"")
        assert c.available() == 0


def test_put_numpy_without_copy(ring: str) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(1000, dtype="<u4")
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(a)
        p.put(a[::-1].copy())
        out = np.empty(1000, dtype="<u4")
        assert c.get_into(out, min=4000, timeout=5) == 4000 and (out == a).all()
        assert c.get_into(out, min=4000, timeout=5) == 4000 and (out == a[::-1]).all()
        with pytest.raises(BufferError):
            p.put(a[::2])  # not contiguous: refused, never silently copied


def test_put_refuses_what_is_not_a_buffer(ring: str) -> None:
    with daqflow.Producer(ring) as p:
        for bad in ("text", 5, None, [1, 2]):
            with pytest.raises(TypeError):
                p.put(bad)  # type: ignore[arg-type]


def test_put_that_can_never_fit(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring):
        size = daqflow.usage(ring).data_bytes
        with pytest.raises(daqflow.NoSpaceError) as e:
            p.put(bytes(size), timeout=None)
        assert e.value.errno == errno.EMSGSIZE and ring in e.value.strerror
        p.put(bytes(size - 1), timeout=0)
        assert p.available() == 0


def test_put_times_out_when_full(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(bytes(p.available()))
        start = time.monotonic()
        with pytest.raises(daqflow.Timeout) as e:
            p.put(b"x", timeout=0.3)
        took = time.monotonic() - start
        assert e.value.errno == errno.ETIMEDOUT and isinstance(e.value, TimeoutError)
        assert 0.29 <= took < 5, took
        with pytest.raises(daqflow.Timeout):
            p.put(b"x", timeout=0)
        c.skip(10)
        p.put(b"x", timeout=0)


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, "soon"])
def test_bad_timeouts(ring: str, bad: object) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        with pytest.raises(ValueError):
            p.put(b"x", timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            c.get(1, timeout=bad)  # type: ignore[arg-type]


def test_infinite_timeout_waits_like_none(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(b"abc", timeout=math.inf)
        assert c.get(3, min=3, timeout=math.inf) == b"abc"


def test_get_min_max_and_timeouts(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        assert c.get(10, min=0) == b""
        start = time.monotonic()
        with pytest.raises(daqflow.Timeout) as e:
            c.get(10, timeout=0.25)
        assert time.monotonic() - start >= 0.24
        assert e.value.strerror == f"get: timed out after 0.25 s waiting for 1 bytes from ring {ring}"
        p.put(b"0123456789")
        with pytest.raises(daqflow.Timeout):
            c.get(20, min=11, timeout=0)
        assert c.get(4) == b"0123"
        assert c.get(100, min=6) == b"456789"
        with pytest.raises(daqflow.NoSpaceError) as e2:
            c.get(1 << 20, min=1 << 20)
        assert e2.value.errno == errno.EMSGSIZE


def test_get_into_errors(ring: str) -> None:
    with daqflow.Consumer(ring) as c:
        with pytest.raises(BufferError):
            c.get_into(b"read-only")
        with pytest.raises(TypeError):
            c.get_into(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            c.get_into(bytearray(4), min=5)


def test_peek_skip_available(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        assert c.peek(10) == b"" and c.available() == 0
        p.put(b"abcdef")
        assert c.available() == 6
        assert c.peek(4) == b"abcd" and c.peek(100) == b"abcdef"
        c.skip(2)
        assert c.available() == 4 and c.get(10) == b"cdef"
        with pytest.raises(daqflow.Error) as e:
            c.skip(1)
        assert e.value.errno == errno.ERANGE


def test_second_producer_and_full_slots(make_ring) -> None:
    name = make_ring(65536, 1)
    with daqflow.Producer(name), daqflow.Consumer(name):
        with pytest.raises(daqflow.AccessError) as e:
            daqflow.Producer(name)
        assert e.value.errno == errno.EACCES and isinstance(e.value, PermissionError)
        with pytest.raises(daqflow.NoSpaceError) as e2:
            daqflow.Consumer(name)
        assert e2.value.errno == errno.ENOMEM


def test_producer_refuses_urls(ring: str) -> None:
    with pytest.raises(daqflow.Error) as e:
        daqflow.Producer(f"tcp://localhost/{ring}")
    assert e.value.errno == errno.EINVAL


def test_consumer_of_a_local_url(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(f"tcp://localhost/{ring}") as c:
        assert c.name == ring
        p.put(b"local")
        assert c.get(5, min=5, timeout=5) == b"local"


def test_close_context_and_collection_free_the_slots(ring: str) -> None:
    p = daqflow.Producer(ring)
    c = daqflow.Consumer(ring)
    assert repr(c) == f"<daqflow.Consumer {ring!r}>" and c.slot == 0 and not c.closed
    c.close()
    c.close()
    assert c.closed and repr(c) == "<daqflow.Consumer closed>"
    for call in (lambda: c.get(1), lambda: c.peek(1), lambda: c.skip(1), c.available, lambda: c.slot,
                 lambda: c.items(), lambda: p.close() or p.put(b"x"), lambda: p.reserve(1).__enter__()):
        with pytest.raises(ValueError):
            call()
    with daqflow.Consumer(ring):
        assert len(daqflow.usage(ring).consumers) == 1
    assert daqflow.usage(ring).consumers == []
    daqflow.Consumer(ring)  # dropped at once
    gc.collect()
    assert daqflow.usage(ring).consumers == [] and daqflow.usage(ring).producer_pid is None


def test_borrow_in_place_and_across_the_wrap(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        fill_to_the_top(p, c, 5)
        p.put(b"0123456789")
        with c.borrow(10, timeout=1) as spans:
            assert [bytes(v) for v in spans] == [b"01234", b"56789"]
            assert all(v.readonly for v in spans)
            kept = spans[0]
        with pytest.raises(ValueError):
            bytes(kept)  # released with the borrow
        assert c.available() == 0
        p.put(b"abcdef")
        with c.borrow(6) as spans:
            assert len(spans) == 1 and bytes(spans[0]) == b"abcdef"
            spans.used = 2
        assert c.peek(10) == b"cdef"
        with pytest.raises(RuntimeError):
            with c.borrow(4):
                raise RuntimeError("nothing consumed")
        assert c.peek(10) == b"cdef"
        with pytest.raises(ValueError):
            with c.borrow(4) as spans:
                spans.used = 5
        assert c.peek(10) == b"cdef"
        with c.borrow(100, min=1) as spans:
            assert b"".join(spans) == b"cdef"
        with pytest.raises(daqflow.Timeout):
            with c.borrow(1, timeout=0.05):
                pass
        with pytest.raises(daqflow.NoSpaceError):
            with c.borrow(1 << 20):
                pass


def test_reserve_in_place_and_across_the_wrap(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        fill_to_the_top(p, c, 3)
        with p.reserve(8, timeout=1) as spans:
            assert [len(v) for v in spans] == [3, 5] and not spans[0].readonly
            spans[0][:] = b"abc"
            spans[1][:] = b"defgh"
            kept = spans[1]
        with pytest.raises(ValueError):
            kept[0] = 1  # released with the reservation
        assert c.get(8, min=8) == b"abcdefgh"
        with p.reserve(10) as spans:
            spans[0][:4] = b"wxyz"
            spans.used = 4
        with pytest.raises(RuntimeError):
            with p.reserve(10) as spans:
                spans[0][:] = bytes(10)
                raise RuntimeError("nothing published")
        with pytest.raises(ValueError):
            with p.reserve(10) as spans:
                spans.used = 11
        assert c.get(100) == b"wxyz" and c.available() == 0
        with p.reserve(0) as spans:
            assert sum(map(len, spans)) == 0
        p.put(bytes(p.available()))
        with pytest.raises(daqflow.Timeout):
            with p.reserve(1, timeout=0.05):
                pass
        with pytest.raises(daqflow.NoSpaceError):
            with p.reserve(1 << 20):
                pass


def test_put_refused_while_a_reservation_is_open(ring: str) -> None:
    with daqflow.Producer(ring) as p:
        with p.reserve(4) as spans:
            spans.used = 0
            with pytest.raises(daqflow.Error) as e:
                p.put(b"x")
            assert e.value.strerror
        p.put(b"x")


def test_negative_sizes_are_refused(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(b"data")
        for call in (lambda: c.get(-1), lambda: c.get(4, min=-1), lambda: c.peek(-1), lambda: c.skip(-1),
                     lambda: c.borrow(-1).__enter__(), lambda: c.borrow(4, min=-1).__enter__(),
                     lambda: p.reserve(-1).__enter__()):
            with pytest.raises(ValueError):
                call()
        assert c.get(4) == b"data"


def test_a_wait_in_one_thread_leaves_the_others_running(ring: str) -> None:
    """The GIL is released while the library waits: a consumer blocked in a thread does
    not stop the thread that feeds it."""
    import threading

    got = []
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        waiter = threading.Thread(target=lambda: got.append(c.get(5, min=5, timeout=10)))
        waiter.start()
        time.sleep(0.2)
        p.put(b"hello")
        waiter.join(10)
    assert got == [b"hello"]
