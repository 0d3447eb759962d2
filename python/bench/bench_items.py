"""make bench: a Python consumer reading NSCLDAQ ring items with Consumer.items(), against
the C consumer of the same items (df_items drain: ring_borrow, walk the headers, release)
in the same run, each fed by the C producer (df_items flood: each put a memcpy) in its own
process. Neither consumer reads the bodies: this is the cost of delivering items, what a
Python analysis adds comes on top.

The machine is shared: the figures are indicative; the ratio, measured in one run, is
what to compare."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Tuple

import daqflow

DF_ITEMS = os.path.join(os.environ["DAQFLOW_TEST_BIN"], "df_items")


def producer(ring: str, count: int, body: int) -> subprocess.Popen:
    return subprocess.Popen([DF_ITEMS, "flood", ring, str(count), str(body), "1"])


def c_rate(ring: str, count: int, body: int) -> float:
    """Items per second of the C consumer."""
    drain = subprocess.Popen([DF_ITEMS, "drain", ring, str(count), str(body), "1"], stdout=subprocess.PIPE, text=True)
    assert drain.stdout is not None
    if drain.stdout.readline() != "attached\n":
        sys.exit("bench: the C consumer did not attach")
    feed = producer(ring, count, body)
    out, _ = drain.communicate()
    if feed.wait() or drain.returncode:
        sys.exit("bench: the C producer or consumer failed")
    return float(out.split()[1])


def python_rate(ring: str, count: int, body: int) -> float:
    """Items per second of Consumer.items(), timed as the C consumer is: from the first item."""
    with daqflow.Consumer(ring) as c:
        feed = producer(ring, count, body)
        n = 0
        start = 0.0
        for _kind, _body in c.items(timeout=30):
            if n == 0:
                start = time.perf_counter()
            n += 1
            if n == count:
                break
        seconds = time.perf_counter() - start
    if feed.wait() or n != count:
        sys.exit(f"bench: the Python consumer got {n} of {count} items")
    return count / seconds


def best_of(ring: str, count: int, body: int, runs: int = 3) -> Tuple[float, float]:
    """The best of `runs` rates of the C and the Python consumer, run alternately so
    that both meet the same load from the other engineers' work."""
    c, py = 0.0, 0.0
    for _ in range(runs):
        c = max(c, c_rate(ring, count, body))
        py = max(py, python_rate(ring, count, body))
    return c, py


def main() -> None:
    ring = f"pybench-{os.getpid()}"
    daqflow.create(ring)  # NSCLDAQ's default: 8 MiB
    try:
        print(f"Python consumer (items(), Python {sys.version.split()[0]}) vs the C consumer, ring of 8 MiB; "
              "indicative figures on a shared machine")
        big, small = 65536, 64
        c_big, py_big = best_of(ring, 200_000, big - 8)
        print(f"  64 KiB items: Python {py_big * big / 1e6:8.0f} MB/s   C {c_big * big / 1e6:8.0f} MB/s   "
              f"Python/C {py_big / c_big:.2f} (goal >= 0.5)")
        c_small, py_small = best_of(ring, 3_000_000, small - 8)
        print(f"  64 B items:   Python {py_small / 1e6:8.2f} M items/s   C {c_small / 1e6:8.2f} M items/s   "
              f"(goal >= 1 M items/s)")
    finally:
        daqflow.remove(ring)


if __name__ == "__main__":
    main()
