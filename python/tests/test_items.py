"""Consumer.items(): whole NSCLDAQ ring items in place, across the wrap, and hostile sizes."""

from __future__ import annotations

import errno
import struct
import time

import pytest

import daqflow
from conftest import item
from test_clients import fill_to_the_top


def test_items_in_order_with_types_and_bodies(ring: str) -> None:
    sent = [(i % 5, bytes([i]) * i) for i in range(200)]
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        for kind, body in sent[:100]:
            p.put(item(kind, body))
        got = [(k, bytes(b)) for k, b in c.items(timeout=0)]
        assert got == sent[:100]
        for kind, body in sent[100:]:
            p.put(item(kind, body))
        got = []
        for kind, body in c.items(timeout=0.2):
            assert body.readonly
            got.append((kind, bytes(body)))
        assert got == sent[100:]


def test_bodies_are_numpy_arrays_without_copies(ring: str) -> None:
    np = pytest.importorskip("numpy")
    values = np.arange(100, dtype="<u2")
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(item(30, values.tobytes()))
        for kind, body in c.items(timeout=0):
            a = np.frombuffer(body, dtype="<u2")
            assert kind == 30 and (a == values).all()
            assert not a.flags.owndata and not a.flags.writeable
            break


def test_every_split_of_an_item_at_the_top_of_the_ring(ring: str) -> None:
    """The header or the body cut by the end of the data area at every offset: each item
    arrives whole, and the one after it too."""
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        for leave in range(0, 24):
            fill_to_the_top(p, c, leave)
            first = item(leave, bytes(range(leave, leave + 12)))
            second = item(99, b"after")
            p.put(first + second)
            got = [(k, bytes(b)) for k, b in c.items(timeout=0)]
            assert got == [(leave, bytes(range(leave, leave + 12))), (99, b"after")], leave
            assert c.available() == 0


def test_an_item_arriving_in_pieces(ring: str) -> None:
    whole = item(7, b"x" * 1000)
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(whole[:5])
        assert list(c.items(timeout=0.05)) == []
        p.put(whole[5:600])
        assert list(c.items(timeout=0)) == []
        assert c.available() == 600  # nothing consumed of an item not all there
        p.put(whole[600:])
        assert [(k, bytes(b)) for k, b in c.items(timeout=0)] == [(7, b"x" * 1000)]


def test_items_wait_for_data(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        start = time.monotonic()
        assert list(c.items(timeout=0.3)) == []
        assert time.monotonic() - start >= 0.29


def test_leaving_the_loop_consumes_only_what_was_seen(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        for i in range(10):
            p.put(item(i, b"%d" % i))
        for kind, _ in c.items(timeout=0):
            if kind == 3:
                break
        assert c.get(100, min=0) == item(4, b"4") + b"".join(item(i, b"%d" % i) for i in range(5, 10))


def test_get_ends_an_iteration(ring: str) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        for i in range(3):
            p.put(item(i, b"b"))
        it = c.items(timeout=0)
        assert next(it)[0] == 0
        assert c.get(9) == item(1, b"b")  # ends `it`, having consumed item 0
        assert list(it) == []
        assert [k for k, _ in c.items(timeout=0)] == [2]


@pytest.mark.parametrize("size", [0, 1, 7])
def test_a_size_field_under_the_header_is_refused(ring: str, size: int) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(item(1, b"ok") + struct.pack("<II", size, 2) + b"junk" * 4)
        it = c.items(timeout=0)
        assert next(it)[0] == 1
        with pytest.raises(daqflow.CorruptError) as e:
            next(it)
        assert e.value.errno == errno.EBADMSG and str(size) in e.value.strerror
        assert c.peek(8) == struct.pack("<II", size, 2)  # the bad item stays for a look


@pytest.mark.parametrize("size", [70_000, 2**32 - 1])
def test_a_size_field_over_the_ring_fails_at_once(ring: str, size: int) -> None:
    with daqflow.Producer(ring) as p, daqflow.Consumer(ring) as c:
        p.put(struct.pack("<II", size, 2) + bytes(100))
        start = time.monotonic()
        with pytest.raises(daqflow.CorruptError) as e:
            next(c.items(timeout=None))
        assert time.monotonic() - start < 2
        assert e.value.errno == errno.EBADMSG and str(size) in e.value.strerror


def test_an_iteration_keeps_its_consumer_attached(ring: str) -> None:
    import gc

    with daqflow.Producer(ring) as p:
        it = daqflow.Consumer(ring).items(timeout=1)  # the Consumer itself is not kept
        gc.collect()
        p.put(item(5, b"alive"))
        kind, data = next(it)
        assert (kind, bytes(data)) == (5, b"alive")
        assert len(daqflow.usage(ring).consumers) == 1
        del it, data
        gc.collect()
        assert daqflow.usage(ring).consumers == []


def test_a_stream_put_in_random_pieces(make_ring) -> None:
    """Items of random sizes put in pieces that ignore item boundaries, on a ring small
    enough to wrap often, read with items() between the puts: all arrive, whole, in order."""
    import random

    rng = random.Random(5)
    name = make_ring(8192, 2)
    sent = [(rng.randrange(1, 1 << 32), rng.randbytes(rng.randrange(0, 2000))) for _ in range(3000)]
    stream = b"".join(item(k, b) for k, b in sent)
    got = []
    with daqflow.Producer(name) as p, daqflow.Consumer(name) as c:
        at = 0
        while at < len(stream):
            piece = stream[at : at + rng.randrange(1, 5000)]
            if p.available() >= len(piece):
                p.put(piece, timeout=0)
                at += len(piece)
            else:
                got.extend((k, bytes(b)) for k, b in c.items(timeout=0))
        got.extend((k, bytes(b)) for k, b in c.items(timeout=0))
    assert got == sent
