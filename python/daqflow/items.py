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
from typing import Any, Iterator, Optional, Tuple

from ._lib import lib
from ._wait import sliced
from .errors import CorruptError, NoSpaceError, Timeout, check

HEADER = 8
#: The most bytes borrowed at once (a ring holds several such batches, so the producer
#: keeps writing while the consumer works through one).
BATCH = 1 << 20

_unpack = struct.Struct("<II").unpack_from


def _let_go(body: Optional[memoryview]) -> None:
    """Ends the last body handed out (see iterate): using it later raises ValueError."""
    if body is not None:
        try:
            body.release()
        except BufferError:  # a numpy array (or other export) over it: it keeps the ring mapped
            pass


def iterate(owner: Any, spans: ctypes.Array, timeout: Optional[float], name: str) -> Iterator[Tuple[int, memoryview]]:
    """The generator behind Consumer.items(); see there. Every library call goes through
    `owner` (the Consumer, which it holds, and whose handle another thread may close).
    The last body is released when the iteration ends, so that the loop's variable,
    still bound after the loop, holds nothing up (releasing each one as the next is asked
    for would cost every item a call)."""
    need = HEADER  # bytes the next borrow waits for: a header, or the whole next item
    base = off = 0  # the next item starts `off` bytes into the span that starts `base` bytes into the borrow
    lent = False
    body: Optional[memoryview] = None
    try:
        while True:
            # Counted as lent from before the call: KeyboardInterrupt comes at the first
            # bytecode after the C call in which SIGINT arrived, which may have opened the
            # borrow. Releasing 0 bytes when none was opened does nothing.
            base = off = 0
            lent = True
            try:
                sliced(
                    lambda ms: owner._call(
                        lambda h: lib.ring_borrow(h, need, need if need > BATCH else BATCH, spans, ms)
                    ),
                    timeout,
                    "items",
                )
            except Timeout:
                return
            except NoSpaceError as e:
                if need == HEADER:
                    raise
                raise CorruptError(
                    errno.EBADMSG,
                    f"ring {name}: an item's size field says {need} bytes, more than the ring holds ({e.strerror})",
                ) from None
            l0, l1 = spans[0].len, spans[1].len
            mv = owner._view(spans[0].data, l0)
            tail = owner._view(spans[1].data, l1)  # what follows mv in the borrow (empty once mv is the second span)
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
                body = memoryview(whole)[HEADER:].toreadonly()
                yield kind, body
            # Released before it stops counting as lent (see above): a second release, after
            # a signal between the two, is refused and changes nothing.
            done = base + off
            released = owner._call(lambda h: lib.ring_release(h, done))
            lent = False
            check(released)
    finally:
        _let_go(body)
        if lent:
            try:
                owner._call(lambda h: lib.ring_release(h, base + off))
            except ValueError:  # closed by another thread: detaching ends the borrow
                pass
