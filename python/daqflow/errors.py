"""Exceptions: OSError subclasses carrying the C library's errno and message.

Each one is also the matching built-in OSError subclass, so `except FileNotFoundError`
and `except daqflow.NotFoundError` both catch a missing ring, and `e.errno` is the
errno the C function returned (negated there)."""

from __future__ import annotations

import errno as _errno

from . import _lib


class Error(OSError):
    """Any failure reported by libdaqflow: `errno` is the error code, `strerror` the
    library's own message (what failed, with which name, and why)."""


class NotFoundError(Error, FileNotFoundError):
    """ENOENT: no such ring, service or allocation."""


class ExistsError(Error, FileExistsError):
    """EEXIST: the ring's name is taken."""


class AccessError(Error, PermissionError):
    """EACCES / EPERM: not allowed (the ring has a producer, another user's ring ...)."""


class Timeout(Error, TimeoutError):
    """ETIMEDOUT: the wait ended before the data or space arrived."""


class ConnectionRefused(Error, ConnectionRefusedError):
    """ECONNREFUSED: no port manager or ring master answers."""


class BrokenConnection(Error, BrokenPipeError):
    """EPIPE: the port manager connection is gone (its ports are released)."""


class BusyError(Error):
    """EBUSY: the ring is in use, or a borrow or reservation is open."""


class NoSpaceError(Error):
    """EMSGSIZE / ENOMEM / EADDRNOTAVAIL: it can never fit, no free slot, no free port."""


class CorruptError(Error):
    """EBADMSG / EPROTO: a corrupt or hostile ring, item stream or reply."""


_BY_ERRNO = {
    _errno.ENOENT: NotFoundError,
    _errno.EEXIST: ExistsError,
    _errno.EACCES: AccessError,
    _errno.EPERM: AccessError,
    _errno.ETIMEDOUT: Timeout,
    _errno.ECONNREFUSED: ConnectionRefused,
    _errno.EPIPE: BrokenConnection,
    _errno.EBUSY: BusyError,
    _errno.EMSGSIZE: NoSpaceError,
    _errno.ENOMEM: NoSpaceError,
    _errno.EADDRNOTAVAIL: NoSpaceError,
    _errno.EBADMSG: CorruptError,
    _errno.EPROTO: CorruptError,
}


def error(code: int, message: str) -> Error:
    """The exception for errno `code` (positive) with `message`."""
    return _BY_ERRNO.get(code, Error)(code, message)


def check(rc: int) -> int:
    """Returns rc when it is >= 0; raises the library's failure when it is a negated errno."""
    if rc < 0:
        raise error(-rc, _lib.last_error() or _errno.errorcode.get(-rc, str(-rc)))
    return rc
