"""The port manager client: allocate listen ports by service name, list, look up."""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from typing import List, Optional

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
        ms = -1 if seconds is None or seconds * 1000 >= 2**31 - 1 else max(1, int(seconds * 1000))
        check(lib.portmgr_set_timeout(self._handle, ms))

    def _live(self) -> int:
        if self._handle is None:
            raise ValueError("PortManager is closed")
        return self._handle

    def allocate(self, application: str) -> int:
        """Allocates a port for `application` under this user's name and returns it.
        NoSpaceError: no free ports; AccessError: the server gives ports only to local
        programs; Error with EIO: another refusal (the message quotes the server)."""
        port = ctypes.c_int()
        check(lib.portmgr_allocate(self._live(), encode(application), ctypes.byref(port)))
        return port.value

    def list(self) -> List[Allocation]:
        """Every allocation on the server, in its order."""
        entries = ctypes.POINTER(PortmgrAllocation)()
        count = ctypes.c_size_t()
        check(lib.portmgr_list(self._live(), ctypes.byref(entries), ctypes.byref(count)))
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
        check(
            lib.portmgr_find_server(
                self._live(), encode(service), None if user is None else encode(user), ctypes.byref(port)
            )
        )
        return port.value

    @property
    def usable(self) -> bool:
        """False once the connection is gone (after a failure, or closed by the server
        after a refusal): its ports are released and every call raises BrokenConnection."""
        return self._handle is not None and check(lib.portmgr_usable(self._handle)) == 1

    def close(self) -> None:
        """Closes the connection: the server releases every port allocated through it."""
        if self._handle is not None:
            self._handle = None
            self._close()

    def __enter__(self) -> PortManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daqflow.PortManager {'closed' if self._handle is None else 'open'}>"
