"""Producer and Consumer: one attachment each to a ring, used as context managers."""

from __future__ import annotations

import ctypes
import os
import warnings
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Tuple

from . import _lib
from ._lib import Pinned, lib
from ._wait import sliced
from .errors import check
from .items import iterate
from .rings import Name, encode


def _size(n: int, what: str) -> int:
    """A byte count from the caller: ctypes would turn a negative one into a huge size_t."""
    if n < 0:
        raise ValueError(f"{what} must be >= 0, not {n}")
    return n


class Spans(List[memoryview]):
    """The one or two memoryviews of ring memory lent by borrow() or reserve() (two when
    the region wraps round the end of the ring).

    `used` is how many bytes leaving the `with` block consumes (borrow) or publishes
    (reserve): all of them unless set lower. Leaving by an exception uses none."""

    used: int

    def __init__(self, views: List[memoryview]) -> None:
        super().__init__(views)
        self.used = sum(len(v) for v in views)


def _release(views: Spans) -> None:
    """Releases lent views, so that using one after its `with` block raises ValueError
    instead of touching ring memory that is no longer ours."""
    for v in views:
        try:
            v.release()
        except BufferError:  # the caller still holds an export of it (a numpy array): leave it
            pass


def _opening(wait: Callable[[], int], close: Callable[[], int]) -> None:
    """Runs `wait`, a wait that opens a borrow or reservation; if it raises, runs `close`
    (which ends one, if it was opened, and does nothing otherwise): KeyboardInterrupt comes
    at the first bytecode after the C call in which SIGINT arrived, and that call may have
    succeeded. Left open, it would make every later call on the client BusyError."""
    try:
        wait()
    except BaseException:
        try:
            close()
        except (OSError, ValueError):
            pass
        raise


class _Lease:
    """The library's handle, held by the client and by its ring memory: ring_detach (which
    unmaps the ring) runs when both are gone, never under a live view."""

    __slots__ = ("__weakref__",)


class _Client:
    """What Producer and Consumer share: the handle, its lifetime, the ring's name.

    The library's handle may be used by one thread at a time and is freed by close():
    every call into the library holds `_lock`, and a wait takes it one slice at a time,
    so close() from another thread waits at most a slice and the waiter then raises
    ValueError instead of running on a freed handle."""

    _attach = None  # set by each subclass: lib.ring_attach_producer or _consumer

    def __init__(self, name: Name) -> None:
        handle = ctypes.c_void_p()
        check(type(self)._attach(encode(name), ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value
        self._lock = _lib.handle_lock(self)
        self._closing = False
        lease = _Lease()
        # Detaches when the client and every view of its ring memory are gone (collection,
        # interpreter exit), if close() did not do it first.
        self._detach = weakref.finalize(lease, lib.ring_detach, handle.value)
        self._lease: Optional[_Lease] = lease
        self._spans = _lib.SpanPair()
        self._base, memory = self._map(handle.value, lease)
        self._rw: Optional[memoryview] = memoryview(memory).cast("B")
        self._ro: Optional[memoryview] = self._rw.toreadonly()
        # Alive while any view of it is: then the ring must stay mapped.
        self._memory = weakref.ref(memory)
        # Collected without close() but with views left: the slot is freed all the same.
        self._orphan = weakref.finalize(self, _orphaned, self._memory, handle.value)
        self._orphan.atexit = False

    def _map(self, handle: int, lease: _Lease) -> Tuple[int, ctypes.Array]:
        """The data area's address and the ring memory object over it (see ring_memory)."""
        raise NotImplementedError

    def _live(self) -> int:
        if self._handle is None or self._closing:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._handle

    def _call(self, fn: Callable[..., int], *args: object) -> int:
        """fn(handle, *args), with the handle held for the call (see the class)."""
        with self._lock:
            if self._closing or self._handle is None:
                raise ValueError(f"{type(self).__name__} is closed")
            return fn(self._handle, *args)

    def _view(self, address: Optional[int], length: int, writable: bool = False) -> memoryview:
        """A memoryview of `length` bytes of ring memory at `address`, which keeps the ring
        mapped while it (or a slice, or a numpy array over it) lives."""
        if not length:
            return memoryview(b"")
        whole = self._rw if writable else self._ro
        if whole is None or address is None:
            raise ValueError(f"{type(self).__name__} is closed")
        start = address - self._base
        return whole[start : start + length]

    @property
    def name(self) -> str:
        """The ring this client is attached to (for tcp://host/ring, the local proxy ring)."""
        return os.fsdecode(self._call(lib.ring_client_name))

    def _end_use(self) -> None:
        """Ends what holds the handle between calls (a Consumer's items())."""

    def close(self) -> None:
        """Detaches from the ring (frees the slot). Calling it again does nothing.

        A memoryview of ring memory still referenced (a numpy array over an item's body)
        keeps the ring mapped until it is gone, so that reading it is never a segfault; the
        slot is freed at once all the same (ResourceWarning): copy what must outlive its
        item, borrow or reservation."""
        if self._handle is None:
            return
        self._closing = True  # a waiter in another thread stops at its next slice
        self._orphan.detach()
        self._end_use()
        with self._lock:
            handle, self._handle = self._handle, None
            for whole in (self._ro, self._rw):
                if whole is not None:
                    whole.release()
            self._ro = self._rw = None
            if self._memory() is None:
                rc = self._detach()  # before the lease goes, so that its result is ours to check
                self._lease = None
                if rc is not None:
                    check(rc)
                return
            # The slot goes now; the mapping stays for the views left (ring_detach runs
            # when they go, as they hold the lease).
            rc = lib.ring_leave(handle)
            self._lease = None
        warnings.warn(
            f"{type(self).__name__} closed while views of its ring memory are still referenced: the ring "
            "stays mapped for them until they are gone (copy what must outlive its item, borrow or reservation)",
            ResourceWarning,
            stacklevel=2,
        )
        check(rc)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else repr(self.name)
        return f"<daqflow.{type(self).__name__} {state}>"


def _orphaned(memory: weakref.ReferenceType, handle: int) -> None:
    """A client collected without close() while views of its ring memory are left (a numpy
    array over the last item's body, typically): they keep the ring mapped, but must not
    keep the slot, or the producer would stall on a consumer nobody reads for.
    ring_leave gives the slot back and keeps the mapping (nothing in a forked child,
    whose copy of the handle has no slot of its own); ring_detach runs when the views go."""
    if memory() is not None:
        lib.ring_leave(handle)


def _map_by(lend: Callable[[int, ctypes.Array], int], give_back: Callable[[int], int]) -> Callable:
    """_map for a client whose zero-byte lend (ring_reserve or ring_borrow of 0 bytes)
    names its position and the start of the data area, as ring_position uses it."""

    def _map(self: _Client, handle: int, lease: _Lease) -> Tuple[int, ctypes.Array]:
        spans = _lib.SpanPair()
        check(lend(handle, spans))
        check(give_back(handle))
        at = ctypes.c_void_p()
        to_top = ctypes.c_size_t()
        check(lib.ring_position(handle, ctypes.byref(at), ctypes.byref(to_top)))
        base = spans[1].data
        return base, _lib.ring_memory(base, (at.value or 0) - base + to_top.value, lease)

    return _map


class Producer(_Client):
    """The producer of ring `name` (AccessError if it already has a live one).

    >>> with daqflow.Producer("myring") as p:
    ...     p.put(b"hello")
    """

    _attach = lib.ring_attach_producer
    _map = _map_by(lambda h, spans: lib.ring_reserve(h, 0, spans, 0), lambda h: lib.ring_commit(h, 0))

    def __enter__(self) -> Producer:
        return self

    def put(self, data: object, timeout: Optional[float] = None) -> None:
        """Puts all of `data` (bytes, bytearray, memoryview, a numpy array: anything with
        the buffer protocol, C-contiguous) or nothing, waiting up to `timeout` seconds
        (None: forever) for space. Nothing is copied before the library copies it into
        the ring. NoSpaceError when it can never fit (more than the data size - 1)."""
        self._live()
        if type(data) is bytes:
            sliced(lambda ms: self._call(lib.ring_put, data, len(data), ms), timeout, "put")
            return
        with Pinned(data) as buf:
            sliced(lambda ms: self._call(lib.ring_put, buf.address, buf.length, ms), timeout, "put")

    @contextmanager
    def reserve(self, n: int, timeout: Optional[float] = None) -> Iterator[Spans]:
        """Zero-copy put: waits up to `timeout` seconds for `n` bytes of space and lends
        them as one or two writable memoryviews; leaving the `with` block publishes them
        (`spans.used` bytes: all unless set lower; none after an exception).

        >>> with producer.reserve(16) as spans:
        ...     spans[0][:] = ...        # two spans when the space wraps
        """
        spans = self._spans
        _size(n, "n")
        _opening(
            lambda: sliced(lambda ms: self._call(lambda h: lib.ring_reserve(h, n, spans, ms)), timeout, "reserve"),
            lambda: self._call(lambda h: lib.ring_commit(h, 0)),
        )
        lent = Spans([self._view(s.data, s.len, writable=True) for s in spans if s.len] or [memoryview(bytearray())])
        ok = False
        try:
            yield lent
            ok = True
        finally:
            used = lent.used if ok and 0 <= lent.used <= n else 0
            _release(lent)
            check(self._call(lambda h: lib.ring_commit(h, used)))
        if used != lent.used:
            raise ValueError(f"spans.used must be between 0 and {n}, not {lent.used!r}")

    def available(self) -> int:
        """Bytes that can be put now without waiting."""
        return self._call(lib.ring_available_put_space)


class Consumer(_Client):
    """A consumer of ring `name_or_url`: a ring of this host, or `tcp://host/ring` (read
    through a local proxy ring, see docs/remote.md). It sees data put from now on.
    NoSpaceError when every consumer slot is taken.

    One thread at a time may use a Consumer; different ones may be used at once."""

    _attach = lib.ring_attach_consumer
    _map = _map_by(lambda h, spans: lib.ring_borrow(h, 0, 0, spans, 0), lambda h: lib.ring_release(h, 0))

    def __init__(self, name_or_url: Name) -> None:
        super().__init__(name_or_url)
        # Weak: a loop left by `break` drops the last reference to its iterator, which then
        # ends at once (CPython) and releases its borrow; no later call is needed for that.
        self._items: Optional[weakref.ReferenceType] = None

    def __enter__(self) -> Consumer:
        return self

    def _end_use(self) -> None:
        """Ends an items() iteration, which holds a borrow between its items."""
        items = self._items() if self._items is not None else None
        self._items = None
        if items is not None:
            try:
                items.close()
            except ValueError:  # running in another thread: it stops at its next call
                pass

    def _quiet(self) -> None:
        """Ends items() (see _end_use) before a call that moves the read position."""
        self._live()
        self._end_use()

    @property
    def slot(self) -> int:
        """The consumer slot this client holds."""
        return check(self._call(lib.ring_slot))

    def get(self, max: int, min: int = 1, timeout: Optional[float] = None) -> bytes:  # noqa: A002
        """Waits up to `timeout` seconds (None: forever) until at least `min` bytes are
        there, then consumes and returns up to `max` of them. Timeout when they do not
        come; NoSpaceError when `min` can never be met. `min=0` never waits."""
        buf = bytearray(_size(max, "max"))
        n = self.get_into(buf, min, timeout)
        return bytes(memoryview(buf)[:n])

    def get_into(self, buffer: object, min: int = 1, timeout: Optional[float] = None) -> int:  # noqa: A002
        """As get(), into `buffer` (a writable bytearray, memoryview or numpy array, up to
        its size); returns the number of bytes written."""
        self._quiet()
        _size(min, "min")
        with Pinned(buffer, writable=True) as buf:
            if min > buf.length:
                raise ValueError(f"min ({min}) is larger than the buffer ({buf.length} bytes)")
            return sliced(lambda ms: self._call(lib.ring_get, buf.address, min, buf.length, ms), timeout, "get")

    def peek(self, max: int) -> bytes:  # noqa: A002
        """Up to `max` of the available bytes, without consuming them; never waits."""
        self._quiet()
        buf = bytearray(_size(max, "max"))
        with Pinned(buf, writable=True) as pinned:
            n = check(self._call(lambda h: lib.ring_peek(h, pinned.address, max)))
        return bytes(memoryview(buf)[:n])

    def skip(self, n: int) -> None:
        """Consumes `n` bytes without reading them (Error with ERANGE if fewer are there)."""
        self._quiet()
        check(self._call(lambda h: lib.ring_skip(h, _size(n, "n"))))

    def available(self) -> int:
        """Bytes that can be read now without waiting."""
        return self._call(lib.ring_available_data)

    @contextmanager
    def borrow(
        self, n: int, timeout: Optional[float] = None, *, min: Optional[int] = None  # noqa: A002
    ) -> Iterator[Spans]:
        """Zero-copy get: waits up to `timeout` seconds until `min` bytes (default `n`)
        are there and lends up to `n` of them in place, as one or two read-only
        memoryviews (two when they wrap round the end of the ring); leaving the `with`
        block consumes them (`spans.used` bytes: all unless set lower; none after an
        exception). The views are released then: do not keep them."""
        self._quiet()
        spans = self._spans
        need = _size(n if min is None else min, "min")
        _size(n, "n")
        _opening(
            lambda: sliced(lambda ms: self._call(lambda h: lib.ring_borrow(h, need, n, spans, ms)), timeout, "borrow"),
            lambda: self._call(lambda h: lib.ring_release(h, 0)),
        )
        lent = Spans([self._view(s.data, s.len) for s in spans if s.len] or [memoryview(b"")])
        ok = False
        try:
            yield lent
            ok = True
        finally:
            total = sum(len(v) for v in lent)
            used = lent.used if ok and 0 <= lent.used <= total else 0
            _release(lent)
            check(self._call(lambda h: lib.ring_release(h, used)))
        if used != lent.used:
            raise ValueError(f"spans.used must be between 0 and {total}, not {lent.used!r}")

    def items(self, timeout: Optional[float] = None) -> Iterator[Tuple[int, memoryview]]:
        """Whole NSCLDAQ ring items (a little-endian uint32 size that counts itself, a
        uint32 type, the body) as `(type, body)` pairs. `body` is a read-only memoryview
        of the ring itself (copied only for an item that wraps round the end of the ring),
        valid until the next item is asked for, the loop ends or the consumer closes:
        numpy.frombuffer(body, ...) costs no copy, bytes(body) keeps a copy.

        The iteration ends when no whole item arrives within `timeout` seconds (None:
        never); an item only partly there stays in the ring for the next call. Raises
        CorruptError for a size field under 8 and the library's error for an item that
        can never fit in the ring. Calling get, peek, skip, borrow or items ends it."""
        self._quiet()
        it = iterate(self, self._spans, timeout, self.name)
        self._items = weakref.ref(it)
        return it
