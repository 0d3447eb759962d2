"""Waits in slices, so that Ctrl-C interrupts them.

A ctypes call blocks in C with no Python bytecode running, and Python runs signal
handlers (KeyboardInterrupt for SIGINT) only between bytecodes; the library restarts its
futex wait when a signal interrupts it. So a long wait is a series of calls of at most
SLICE_MS each: a signal is handled within one slice, and a call that has data or space
returns at once, so the slices cost nothing while data flows."""

from __future__ import annotations

import errno
import math
import re
import time
from typing import Callable, Optional

from ._lib import last_error
from .errors import Timeout, check

SLICE_MS = 100


def check_timeout(timeout: Optional[float]) -> Optional[float]:
    """Validates a timeout in seconds (None: forever); raises ValueError otherwise."""
    if timeout is None:
        return None
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
    return seconds


def sliced(call: Callable[[int], int], timeout: Optional[float], what: str) -> int:
    """Calls call(ms) until it returns something other than -ETIMEDOUT or `timeout`
    seconds (None: forever) have passed; returns its result, raises its failure."""
    seconds = check_timeout(timeout)
    deadline = None if seconds is None or math.isinf(seconds) else time.monotonic() + seconds
    while True:
        if deadline is None:
            ms = SLICE_MS
        else:
            ms = min(SLICE_MS, max(0, math.ceil((deadline - time.monotonic()) * 1000)))
        rc = call(ms)
        if rc != -errno.ETIMEDOUT:
            return check(rc)
        if deadline is not None and time.monotonic() >= deadline:
            # The library's words (what was awaited, in which ring) with the whole wait's length.
            detail = re.sub(r"^timed out after \d+ ms", f"timed out after {seconds:g} s", last_error())
            raise Timeout(errno.ETIMEDOUT, f"{what}: {detail}")
