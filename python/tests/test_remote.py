"""A Python consumer of tcp://host/ring on another host (network namespaces, as the Rust
remote tests make them), fed by a C producer there, every byte checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import netns
from conftest import built_program, read_line

CONSUME = """
import sys, daqflow
sys.path.insert(0, {tests!r})
from conftest import body, body_len, item_type
url, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with daqflow.Consumer(url) as c:
    print("attached", c.name, flush=True)
    i = 0
    for kind, data in c.items(timeout=30):
        if kind != item_type(i) or data != body(0, seed, i):
            sys.exit(f"item {{i}}: type {{kind}}, {{len(data)}} bytes, expected {{body_len(0, i)}}")
        i += 1
        if i == count:
            break
    print("items", i, flush=True)
    sys.exit(0 if i == count else f"only {{i}} of {{count}} items")
"""


@pytest.fixture
def net():
    try:
        two = netns.make(os.environ.get("DAQFLOW_STAGE"))
    except OSError as e:
        pytest.skip(f"no network namespaces here: {e}")
    yield two
    two.close()


def test_python_consumer_of_a_ring_on_another_host(net: netns.Net) -> None:
    df_items = built_program("df_items")
    net.start_daemons(0)
    ring = f"pyremote{os.getpid()}"
    made = net.run(0, [sys.executable, "-c", f"import daqflow; daqflow.create({ring!r}, 200_000, 4)"])
    assert made.returncode == 0, made.stderr
    count, seed = 3000, 11
    url = f"tcp://{net.hosts[0].short}/{ring}"
    here = os.path.dirname(os.path.abspath(__file__))
    consumer = net.popen(1, [sys.executable, "-c", CONSUME.format(tests=here), url, str(count), str(seed)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = read_line(consumer, 40)
        assert line == f"attached {net.hosts[0].name}.{ring}\n", (line, net.log(1, "feeder.log"))
        produced = net.run(0, [df_items, "produce", ring, str(count), "0", str(seed)], timeout=60)
        assert produced.returncode == 0, produced.stderr
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    if consumer.returncode != 0:
        print("feeder log:", net.log(1, "feeder.log"), "ring master log:", net.log(0, "ringmaster.log"), sep="\n")
    assert consumer.returncode == 0, err.decode()
    assert out.decode().endswith(f"items {count}\n")
    # usage() of the URL from host b is what host a's ring master lists.
    listed = net.run(1, [sys.executable, "-c", f"import daqflow; u = daqflow.usage({url!r}); "
                         "print(u.data_bytes, u.max_consumers, [c.slot for c in u.consumers])"])
    local = net.run(0, [sys.executable, "-c", f"import daqflow; u = daqflow.usage({ring!r}); "
                        "print(u.data_bytes, u.max_consumers)"])
    assert listed.returncode == 0 and local.returncode == 0, (listed.stderr, local.stderr)
    data_bytes, max_consumers = local.stdout.split()
    assert listed.stdout.startswith(f"{data_bytes} {max_consumers} ["), listed.stdout
