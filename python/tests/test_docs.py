"""The notebook example of docs/python.md runs as printed, against a ring fed meanwhile."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from pathlib import Path

import pytest

import daqflow
from conftest import item


def example() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    return next(b for b in blocks if "np.frombuffer" in b)


def test_the_histogram_example(make_ring) -> None:
    np = pytest.importorskip("numpy")
    name = make_ring(1 << 20, 2)
    code = example()
    assert 'RING = "fox"' in code and "events == 100_000" in code
    code = code.replace('RING = "fox"', f"RING = {name!r}").replace("events == 100_000", "events == 500")
    rng = np.random.default_rng(1)
    events = [rng.integers(0, 4096, size=int(n), dtype="<u2") for n in rng.integers(1, 40, size=500)]

    def feed() -> None:
        with daqflow.Producer(name) as p:
            deadline = time.monotonic() + 20
            while not daqflow.usage(name).consumers and time.monotonic() < deadline:
                time.sleep(0.01)
            for i, adc in enumerate(events):
                if i % 50 == 0:
                    p.put(item(1, b"not an event"))
                p.put(item(30, adc.tobytes()))

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/python.md", "exec"), scope)
    feeder.join()
    expected = np.bincount(np.concatenate(events), minlength=4096)
    assert scope["events"] == 500 and (scope["hist"] == expected).all()
    assert out.getvalue().startswith("500 events, mean channel ")
