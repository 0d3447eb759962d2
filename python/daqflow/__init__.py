"""daqflow: NSCLDAQ-compatible shared-memory rings and the port manager, from Python.

A thin layer (ctypes) over the C library libdaqflow.so.1, so rings are shared with C,
C++, Tcl and NSCLDAQ programs, in other processes or in this one. See docs/python.md.

    import daqflow, numpy as np
    with daqflow.Consumer("myring") as c:
        for kind, body in c.items(timeout=5):
            values = np.frombuffer(body, dtype="<u2")    # no copy
"""

from __future__ import annotations

from ._lib import lib as _libdaqflow
from .clients import Consumer, Producer, Spans
from .errors import (
    AccessError,
    BrokenConnection,
    BusyError,
    ConnectionRefused,
    CorruptError,
    Error,
    ExistsError,
    NoSpaceError,
    NotFoundError,
    Timeout,
)
from .portmgr import Allocation, PortManager
from .rings import (
    DEFAULT_DATA_BYTES,
    DEFAULT_MAX_CONSUMERS,
    DEFAULT_MODE,
    ConsumerUsage,
    Usage,
    create,
    disconnect_consumer,
    disconnect_producer,
    exists,
    format,
    list_rings,
    remove,
    usage,
)

__version__ = "1.0.0"


def library_version() -> str:
    """The version of the libdaqflow loaded, e.g. "1.0.0"."""
    return _libdaqflow.daqflow_version().decode()


__all__ = [
    "AccessError",
    "Allocation",
    "BrokenConnection",
    "BusyError",
    "ConnectionRefused",
    "Consumer",
    "ConsumerUsage",
    "CorruptError",
    "DEFAULT_DATA_BYTES",
    "DEFAULT_MAX_CONSUMERS",
    "DEFAULT_MODE",
    "Error",
    "ExistsError",
    "NoSpaceError",
    "NotFoundError",
    "PortManager",
    "Producer",
    "Spans",
    "Timeout",
    "Usage",
    "create",
    "disconnect_consumer",
    "disconnect_producer",
    "exists",
    "format",
    "library_version",
    "list_rings",
    "remove",
    "usage",
]
