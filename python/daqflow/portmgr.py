"""The port manager client: allocate listen ports by service name, list, look up."""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from typing import Callable, List, Optional

from . import _lib
from ._lib import PortmgrAllocation, lib
from ._wait import check_timeout
from .errors import check
from .rings import encode


@dataclass(frozen=True)
class Allocation:
    """One allocation as the server lists it (a second allocation of one name is listed
    with _1, _2 ... appended)."""

    port: int
    application: str
    user: str


def _text(raw: Optional[bytes]) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


class PortManager:
    """A connection to the port manager (daqportmgr, NSCLDAQ's or FRIB's) on `host` at
    `port` (None: the number in $DAQPORTMGR_PORTFILE or /var/tmp/daqportmgr/listen.port,
    else 30000). Connecting waits at most 5 s; each request waits `timeout` seconds
    (None: forever) for its reply.

    The ports allocated through it stay allocated while it is open: until close(), the
    end of its `with` block, its collection, or the process's exit.
    ConnectionRefused when no server answers."""

    def __init__(self, host: str = "localhost", port: Optional[int] = None, timeout: Optional[float] = 5.0) -> None:
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port!r}")
        seconds = check_timeout(timeout)
        handle = ctypes.c_void_p()
        check(lib.portmgr_open(encode(host), 0 if port is None else int(port), ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value
        self._close = weakref.finalize(self, lib.portmgr_close, handle.value)
        # A request holds the handle (one thread at a time, in the library); close() from
        # another thread meanwhile leaves the closing to it, when its reply or timeout comes.
        self._lock = _lib.handle_lock(self)
        self._closing = False
        ms = -1 if seconds is None or seconds * 1000 >= 2**31 - 1 else max(1, int(seconds * 1000))
        check(lib.portmgr_set_timeout(self._handle, ms))

    def _live(self) -> int:
        if self._handle is None or self._closing:
            raise ValueError("PortManager is closed")
        return self._handle

    def _call(self, fn: Callable[[int], int]) -> int:
        """fn(handle), holding the handle; closes it after, if close() came meanwhile."""
        with self._lock:
            handle = self._live()
            try:
                return fn(handle)
            finally:
                if self._closing:
                    self._finish_close()

    def _finish_close(self) -> None:
        if self._handle is not None:
            self._handle = None
            self._close()

    def allocate(self, application: str) -> int:
        """Allocates a port for `application` under this user's name and returns it.
        NoSpaceError: no free ports; AccessError: the server gives ports only to local
        programs; Error with EIO: another refusal (the message quotes the server)."""
        port = ctypes.c_int()
        name = encode(application)
        check(self._call(lambda h: lib.portmgr_allocate(h, name, ctypes.byref(port))))
        return port.value

    def list(self) -> List[Allocation]:
        """Every allocation on the server, in its order."""
        entries = ctypes.POINTER(PortmgrAllocation)()
        count = ctypes.c_size_t()
        check(self._call(lambda h: lib.portmgr_list(h, ctypes.byref(entries), ctypes.byref(count))))
        try:
            return [
                Allocation(entries[i].port, _text(entries[i].application), _text(entries[i].user))
                for i in range(count.value)
            ]
        finally:
            lib.portmgr_list_free(entries, count)

    def find_server(self, service: str, user: Optional[str] = None) -> int:
        """The port of `service` run by `user` (None: this user), matching the listed name
        exactly. NotFoundError when nothing matches."""
        port = ctypes.c_int()
        names = encode(service), None if user is None else encode(user)
        check(self._call(lambda h: lib.portmgr_find_server(h, *names, ctypes.byref(port))))
        return port.value

    @property
    def usable(self) -> bool:
        """False once the connection is gone (after a failure, or closed by the server
        after a refusal): its ports are released and every call raises BrokenConnection."""
        try:
            return check(self._call(lib.portmgr_usable)) == 1
        except ValueError:
            return False

    def close(self) -> None:
        """Closes the connection: the server releases every port allocated through it.
        During a request in another thread, the connection is closed when its reply (or
        its timeout) comes, and this returns at once."""
        if self._handle is None:
            return
        self._closing = True
        if self._lock.acquire(blocking=False):
            try:
                self._finish_close()
            finally:
                self._lock.release()

    def __enter__(self) -> PortManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daqflow.PortManager {'closed' if self._handle is None else 'open'}>"
