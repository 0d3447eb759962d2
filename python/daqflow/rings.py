"""Ring administration: create, remove, list, usage, format, disconnect."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field
from typing import List, Optional, Union

from . import _lib
from ._lib import lib
from .errors import check, error

Name = Union[str, bytes, "os.PathLike[str]"]

#: Data bytes of a ring created without data_bytes (NSCLDAQ's 8 MiB).
DEFAULT_DATA_BYTES = 8 * 1024 * 1024
#: Consumer slots of a ring created without max_consumers.
DEFAULT_MAX_CONSUMERS = 100
#: Permissions of a ring created without mode: world read-write, as NSCLDAQ.
DEFAULT_MODE = 0o666
#: The most consumer slots a ring may have; a larger figure is corrupt or hostile.
MAX_CONSUMERS = 1 << 20


def encode(name: Name) -> bytes:
    """A name as the C library takes it. A NUL byte would silently cut it short in C."""
    raw = os.fsencode(name)
    if b"\0" in raw:
        raise error(errno.EINVAL, f"name {name!r} contains a NUL byte")
    return raw


def _count(value: Optional[int], what: str, limit: int) -> int:
    if value is None:
        return 0
    n = int(value)
    if n <= 0 or n > limit:
        raise ValueError(f"{what} must be between 1 and {limit}, not {value!r}")
    return n


def _mode(mode: Optional[int]) -> int:
    if mode is None:
        return DEFAULT_MODE
    if not 0 <= int(mode) <= 0o7777:
        raise ValueError(f"mode must be permission bits (0 to 0o7777), not {mode!r}")
    return int(mode)


def create(
    name: Name, data_bytes: Optional[int] = None, max_consumers: Optional[int] = None, mode: Optional[int] = None
) -> None:
    """Creates ring `name` with at least `data_bytes` of data (default 8 MiB; rounded up
    to whole pages, as NSCLDAQ does), `max_consumers` consumer slots (default 100) and
    permissions `mode` (default 0o666; 0o660 or 0o600 keep other users out).

    Raises ExistsError when the name is taken; nothing is left behind on failure."""
    check(
        lib.ring_create_mode(
            encode(name),
            _count(data_bytes, "data_bytes", (1 << 64) - 1),
            _count(max_consumers, "max_consumers", MAX_CONSUMERS),
            _mode(mode),
        )
    )


def remove(name: Name) -> None:
    """Removes ring `name` (NotFoundError: none; AccessError: another user's)."""
    check(lib.ring_remove(encode(name)))


def exists(name: Name) -> bool:
    """True if `name` is a ring on this host (False if it is missing or not a ring)."""
    return check(lib.ring_exists(encode(name))) == 1


def list_rings() -> List[str]:
    """Every ring on this host, sorted."""
    names = ctypes.POINTER(ctypes.c_char_p)()
    count = ctypes.c_size_t()
    check(lib.ring_list(ctypes.byref(names), ctypes.byref(count)))
    try:
        return [os.fsdecode(names[i]) for i in range(count.value)]
    finally:
        lib.ring_list_free(names, count)


def format(name: Name, max_consumers: Optional[int] = None) -> None:  # noqa: A001 (NSCLDAQ's name)
    """Makes the shared-memory object `name` an empty ring with `max_consumers` slots
    (default 100), as NSCLDAQ's `ringbuffer format` does. BusyError while clients are
    attached."""
    check(lib.ring_format(encode(name), _count(max_consumers, "max_consumers", MAX_CONSUMERS)))


def disconnect_producer(name: Name) -> None:
    """Frees the producer slot of ring `name`, whoever holds it."""
    check(lib.ring_disconnect_producer(encode(name)))


def disconnect_consumer(name: Name, slot: int) -> None:
    """Frees consumer slot `slot` of ring `name` (Error with ERANGE: no such slot)."""
    if not 0 <= int(slot) < (1 << 32):
        raise error(errno.ERANGE, f"ring {os.fsdecode(name)!r} has no consumer slot {slot}")
    check(lib.ring_disconnect_consumer(encode(name), int(slot)))


@dataclass(frozen=True)
class ConsumerUsage:
    """One consumer slot in use. pid 0: a consumer in the middle of attaching; slot is
    None for another host's ring (its ring master does not say)."""

    pid: int
    slot: Optional[int]
    backlog: int


@dataclass(frozen=True)
class Usage:
    """A ring's usage, as NSCLDAQ's `ringbuffer usage` reports it."""

    data_bytes: int
    put_space: int
    max_consumers: int
    producer_pid: Optional[int]
    max_get: int
    min_get: int
    consumers: List[ConsumerUsage] = field(default_factory=list)


def usage(name_or_url: Name) -> Usage:
    """The usage of ring `name_or_url`: a ring of this host, or `tcp://host/ring` (what
    that host's ring master lists). Slots of dead clients are freed first."""
    raw = encode(name_or_url)
    info = _lib.RingUsageInfo()
    capacity = 0
    # The count can grow between two calls; a few tries, each sized by the last answer.
    for _ in range(4):
        entries = (_lib.RingConsumerInfo * max(capacity, 1))()
        n = check(lib.ring_usage(raw, ctypes.byref(info), entries, capacity))
        if n <= capacity:
            break
        capacity = min(n + 8, MAX_CONSUMERS)
    consumers = [
        ConsumerUsage(c.pid, None if c.slot == 0xFFFFFFFF else c.slot, c.backlog) for c in entries[: min(n, capacity)]
    ]
    return Usage(
        data_bytes=info.data_bytes,
        put_space=info.put_space,
        max_consumers=info.max_consumers,
        producer_pid=None if info.producer_pid < 0 else info.producer_pid,
        max_get=info.max_get,
        min_get=info.min_get,
        consumers=consumers,
    )
