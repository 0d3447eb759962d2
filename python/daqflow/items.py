"""Iteration over NSCLDAQ ring items, read in place from borrowed ring memory.

An item is a little-endian uint32 size (counting the whole item, itself included), a
uint32 type and size - 8 bytes of body. The iterator borrows what is there (up to BATCH
bytes at a time, so the producer refills the rest of the ring meanwhile), yields each
whole item as a memoryview of the ring, and releases the bytes of the items it has
handed out when it borrows again. An item that wraps round the end of the ring is the
one case that is copied. Every size field comes from a process we do not control: one
under 8 is refused, and one over the ring's capacity is refused by the library's borrow
(it can never be met) before anything is sized by it."""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import Iterator, Optional, Tuple

from ._lib import lib, view
from ._wait import sliced
from .errors import CorruptError, NoSpaceError, Timeout, check

HEADER = 8
#: The most bytes borrowed at once (a ring holds several such batches, so the producer
#: keeps writing while the consumer works through one).
BATCH = 1 << 20

_unpack = struct.Struct("<II").unpack_from


def iterate(
    owner: object, handle: int, spans: ctypes.Array, timeout: Optional[float], name: str
) -> Iterator[Tuple[int, memoryview]]:
    """The generator behind Consumer.items(); see there. It holds `owner`, the Consumer,
    so that the handle is not detached under it while the iteration lives."""
    need = HEADER  # bytes the next borrow waits for: a header, or the whole next item
    base = off = 0  # the next item starts `off` bytes into the span that starts `base` bytes into the borrow
    lent = False
    try:
        while True:
            try:
                sliced(lambda ms: lib.ring_borrow(handle, need, need if need > BATCH else BATCH, spans, ms),
                       timeout, "items")
            except Timeout:
                return
            except NoSpaceError as e:
                if need == HEADER:
                    raise
                raise CorruptError(
                    errno.EBADMSG,
                    f"ring {name}: an item's size field says {need} bytes, more than the ring holds ({e.strerror})",
                ) from None
            lent = True
            l0, l1 = spans[0].len, spans[1].len
            mv = view(spans[0].data, l0)
            tail = view(spans[1].data, l1)  # what follows mv in the borrow (empty once mv is the second span)
            base, off, length = 0, 0, l0
            while True:
                # The common case, kept to a few bytecodes: a whole item inside this span.
                while off + HEADER <= length:
                    size, kind = _unpack(mv, off)
                    end = off + size
                    if size < HEADER or end > length:
                        break
                    body = mv[off + HEADER : end]
                    off = end
                    yield kind, body
                rest = length - off
                if rest == 0 and len(tail):
                    mv, base, off, length, tail = tail, l0, 0, l1, memoryview(b"")
                    continue
                there = rest + len(tail)
                if there < HEADER:
                    need = HEADER
                    break
                head = mv[off : off + HEADER] if rest >= HEADER else bytes(mv[off:]) + bytes(tail[: HEADER - rest])
                size, kind = _unpack(head)
                if size < HEADER:
                    raise CorruptError(
                        errno.EBADMSG,
                        f"ring {name}: an item's size field says {size} bytes, less than its 8-byte header",
                    )
                if size > there:
                    need = size
                    break
                # The item wraps round the end of the ring: the one copy.
                whole = bytearray(size)
                whole[:rest] = mv[off:]
                whole[rest:] = tail[: size - rest]
                mv, base, off, length, tail = tail, l0, size - rest, l1, memoryview(b"")
                yield kind, memoryview(whole)[HEADER:].toreadonly()
            lent = False
            check(lib.ring_release(handle, base + off))
    finally:
        if lent:
            lib.ring_release(handle, base + off)
