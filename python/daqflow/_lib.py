"""Loads libdaqflow.so.1 and declares the C functions the package calls.

ctypes, not cffi: it ships with every CPython, so the package needs nothing compiled and
nothing from PyPI, and it releases the GIL around each call (other threads run while one
waits on a ring). Every signature below is copied from include/daqflow.h.

Which library is loaded, in this order:
  1. $DAQFLOW_LIBRARY, a path to the library file (a build tree, a staged install);
  2. libdaqflow.so.1 through the dynamic loader (LD_LIBRARY_PATH, the ldconfig cache,
     the default directories), i.e. the copy C, C++ and Tcl programs in the same process
     use, so a process holds one copy of the library;
  3. /usr/local/lib/libdaqflow.so.1, where `make install` puts it by default, for a host
     where ldconfig has not been run since.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_ssize_t, c_uint32, c_uint64, c_void_p

SONAME = "libdaqflow.so.1"
_FALLBACK = "/usr/local/lib/" + SONAME


def _load() -> ctypes.CDLL:
    explicit = os.environ.get("DAQFLOW_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit)
        except OSError as e:
            raise ImportError(f"daqflow: cannot load $DAQFLOW_LIBRARY={explicit}: {e}") from e
    errors = []
    for candidate in (SONAME, _FALLBACK):
        try:
            return ctypes.CDLL(candidate)
        except OSError as e:
            errors.append(str(e))
    raise ImportError(
        f"daqflow: cannot load {SONAME} ({'; '.join(errors)}); install daqflow (`make install`, then "
        "`ldconfig`), add its library directory to LD_LIBRARY_PATH, or set DAQFLOW_LIBRARY to the library file"
    )


lib = _load()


class PortmgrAllocation(ctypes.Structure):
    _fields_ = [("port", c_int), ("application", c_char_p), ("user", c_char_p)]


class RingUsageInfo(ctypes.Structure):
    _fields_ = [
        ("data_bytes", c_uint64),
        ("put_space", c_uint64),
        ("max_consumers", c_uint32),
        ("producer_pid", ctypes.c_int32),
        ("max_get", c_uint64),
        ("min_get", c_uint64),
        ("n_consumers", c_uint32),
    ]


class RingConsumerInfo(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_int32), ("slot", c_uint32), ("backlog", c_uint64)]


class RingSpan(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


SpanPair = RingSpan * 2

_p = c_void_p  # opaque handles (ring_client *, portmgr *)

_SIGNATURES = {
    "daqflow_last_error": (c_char_p, []),
    "daqflow_version": (c_char_p, []),
    "portmgr_open": (c_int, [c_char_p, c_int, POINTER(_p)]),
    "portmgr_set_timeout": (c_int, [_p, c_int]),
    "portmgr_allocate": (c_int, [_p, c_char_p, POINTER(c_int)]),
    "portmgr_usable": (c_int, [_p]),
    "portmgr_list": (c_int, [_p, POINTER(POINTER(PortmgrAllocation)), POINTER(c_size_t)]),
    "portmgr_list_free": (None, [POINTER(PortmgrAllocation), c_size_t]),
    "portmgr_find_server": (c_int, [_p, c_char_p, c_char_p, POINTER(c_int)]),
    "portmgr_close": (c_int, [_p]),
    "ring_create_mode": (c_int, [c_char_p, c_uint64, c_uint32, c_uint32]),
    "ring_format": (c_int, [c_char_p, c_uint32]),
    "ring_remove": (c_int, [c_char_p]),
    "ring_exists": (c_int, [c_char_p]),
    "ring_list": (c_int, [POINTER(POINTER(c_char_p)), POINTER(c_size_t)]),
    "ring_list_free": (None, [POINTER(c_char_p), c_size_t]),
    "ring_attach_producer": (c_int, [c_char_p, POINTER(_p)]),
    "ring_attach_consumer": (c_int, [c_char_p, POINTER(_p)]),
    "ring_client_name": (c_char_p, [_p]),
    "ring_detach": (c_int, [_p]),
    "ring_leave": (c_int, [_p]),
    "ring_put": (c_int, [_p, c_void_p, c_size_t, c_int]),
    "ring_get": (c_ssize_t, [_p, c_void_p, c_size_t, c_size_t, c_int]),
    "ring_peek": (c_ssize_t, [_p, c_void_p, c_size_t]),
    "ring_skip": (c_int, [_p, c_size_t]),
    "ring_available_data": (c_uint64, [_p]),
    "ring_available_put_space": (c_uint64, [_p]),
    "ring_slot": (c_int, [_p]),
    "ring_usage": (c_int, [c_char_p, POINTER(RingUsageInfo), POINTER(RingConsumerInfo), c_size_t]),
    "ring_disconnect_producer": (c_int, [c_char_p]),
    "ring_disconnect_consumer": (c_int, [c_char_p, c_uint32]),
    "ring_reserve": (c_int, [_p, c_size_t, POINTER(RingSpan), c_int]),
    "ring_commit": (c_int, [_p, c_size_t]),
    "ring_borrow": (c_ssize_t, [_p, c_size_t, c_size_t, POINTER(RingSpan), c_int]),
    "ring_release": (c_int, [_p, c_size_t]),
    "ring_position": (c_int, [_p, POINTER(c_void_p), POINTER(c_size_t)]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes



def ring_memory(address: int, length: int, owner: object) -> ctypes.Array:
    """The `length` bytes of ring memory at `address` as an object with the buffer
    protocol, holding `owner` (what keeps that memory mapped): every memoryview, slice
    or numpy array made from it keeps `owner` alive, so none outlives the mapping.
    One per client, over the whole data area, so only a few array types are ever made."""
    memory = type("RingMemory", (ctypes.c_ubyte * length,), {}).from_address(address)
    memory.owner = owner
    return memory


# Python's own C API, for the address of any object with the buffer protocol.
# pythonapi keeps the GIL, as these calls need.
class PyBuffer(ctypes.Structure):
    """Python's Py_buffer (part of the stable ABI since 3.11, unchanged since 3.3)."""

    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", c_void_p),
        ("strides", c_void_p),
        ("suboffsets", c_void_p),
        ("internal", c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.restype = c_int
_get_buffer.argtypes = [ctypes.py_object, POINTER(PyBuffer), c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.restype = None
_release_buffer.argtypes = [POINTER(PyBuffer)]
_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 0x1


class Pinned:
    """The address and length of a C-contiguous buffer, pinned while the `with` lasts.

    No copy is made: the bytes of a bytes object, a bytearray, a memoryview or a numpy
    array are handed to the library where they are."""

    __slots__ = ("_buf", "address", "length")

    def __init__(self, data: object, writable: bool = False) -> None:
        self._buf = PyBuffer()
        try:
            _get_buffer(data, ctypes.byref(self._buf), _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE)
        except (BufferError, ValueError) as e:  # TypeError (no buffer protocol at all) goes as it is
            # numpy says ValueError where memoryview says BufferError: one kind for both.
            need = "a writable, C-contiguous buffer" if writable else "a C-contiguous buffer"
            raise BufferError(f"daqflow needs {need}, not {type(data).__name__}: {e}") from None
        self.address = self._buf.buf
        self.length = self._buf.len

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        _release_buffer(ctypes.byref(self._buf))


# Objects whose `_lock` guards a library handle. A forked child gets fresh locks: one held
# by another thread of the parent at the fork would never be released in the child.
_LOCKED: "weakref.WeakSet[object]" = weakref.WeakSet()


def handle_lock(owner: object) -> threading.RLock:
    """A new lock for `owner`'s handle, replaced in a forked child (see _LOCKED)."""
    _LOCKED.add(owner)
    return threading.RLock()


def _after_fork_in_child() -> None:
    for owner in list(_LOCKED):
        owner._lock = threading.RLock()  # type: ignore[attr-defined]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def last_error() -> str:
    """The library's message for the calling thread's most recent failure."""
    message = lib.daqflow_last_error()
    return message.decode("utf-8", "replace") if message else ""
