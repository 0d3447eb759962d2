"""Ring memory outliving what lent it, and a client closed by one thread while another
uses it: each case runs in a child interpreter, since getting it wrong is a segfault
(the ring unmapped, or the handle freed, under a memoryview or a waiting call)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import daqflow

# What every child starts with: a ring `name` with 16-byte items 0, 1, 2 in it, a
# producer `p` and a consumer `c` attached before the items were put.
PRELUDE = """
import gc, struct, sys, threading, time, warnings
import daqflow
name = sys.argv[1]
c = daqflow.Consumer(name)
p = daqflow.Producer(name)
for i in range(3):
    p.put(struct.pack("<II", 16, i + 1) + bytes([i]) * 8)
"""


def run_child(ring: str, body: str) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", code, ring],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )


def assert_survives(ring: str, body: str, expect: str = "ok") -> None:
    done = run_child(ring, body)
    assert done.returncode == 0, f"child died with {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip().splitlines()[-1:] == [expect], done.stdout + done.stderr


CASES = {
    # Bodies kept past their item, then the consumer closed: the ring must stay mapped
    # under them (they read what the ring holds, not freed memory).
    "item bodies kept past close": """
        bodies = [body for _, body in c.items(timeout=0)]
        c.close()
        assert c.closed
        for b in bodies:
            try:
                bytes(b)  # released (ValueError) or still mapped: never a segfault
            except ValueError:
                pass
        print("ok")
        """,
    "a slice of a borrowed view kept past close": """
        with c.borrow(16) as spans:
            kept = spans[0][8:]
        c.close()
        try:
            bytes(kept)
        except ValueError:
            pass
        print("ok")
        """,
    "a consumer collected under a kept body": """
        def first():
            mine = daqflow.Consumer(name)
            p.put(struct.pack("<II", 16, 9) + bytes(8))
            for _, body in mine.items(timeout=0):
                return body[2:]
        kept = first()
        gc.collect()
        try:
            bytes(kept)
        except ValueError:
            pass
        print("ok")
        """,
    "a producer closed under a kept reservation slice": """
        with p.reserve(16) as spans:
            kept = spans[0][4:]
            spans.used = 0
        p.close()
        try:
            kept[0] = 1
        except (ValueError, TypeError):
            pass
        print("ok")
        """,
    "closed while another thread waits in get": """
        c.skip(48)
        errors = []
        def reader():
            try:
                c.get(100, timeout=None)
            except ValueError as e:
                errors.append(e)
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        c.close()
        t.join(10)
        print("ok" if not t.is_alive() and len(errors) == 1 else f"bad {t.is_alive()} {errors}")
        """,
    "closed while another thread waits in items": """
        c.skip(48)
        seen = []
        def reader():
            try:
                for kind, body in c.items(timeout=None):
                    seen.append(kind)
            except ValueError as e:
                seen.append(e)
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        c.close()
        t.join(10)
        print("ok" if not t.is_alive() else "bad: the reader still waits")
        """,
    "a producer closed while another thread waits for space": """
        errors = []
        def writer():
            try:
                while True:
                    p.put(bytes(30000), timeout=None)
            except ValueError as e:
                errors.append(e)
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.3)
        p.close()
        t.join(10)
        print("ok" if not t.is_alive() and len(errors) == 1 else f"bad {t.is_alive()} {errors}")
        """,
    "a forked child closes what it inherited while a parent thread waited in it": """
        import os
        c.skip(48)
        def reader():
            try:
                c.get(100, timeout=3)
            except (ValueError, daqflow.Timeout):
                pass
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)  # the reader holds the consumer's lock for a slice at a time
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(10)  # a hang is a failure (SIGALRM), not a stray process
            c.close()  # the lock of a thread that does not exist here must not hang this
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        t.join(10)
        print("ok" if status == 0 else f"bad {status}")
        """,
    "a forked child closes its copy under a view: the parent keeps its slot": """
        import os
        kept = [body[:] for _, body in c.items(timeout=0)]
        pid = os.fork()
        if pid == 0:
            c.close()
            os._exit(0)
        os.waitpid(pid, 0)
        p.put(struct.pack("<II", 16, 7) + bytes(8))
        print("ok" if [k for k, _ in c.items(timeout=0)] == [7] else "bad: the parent lost its slot")
        """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ring_memory_and_handles_outlive_their_users_safely(ring: str, case: str) -> None:
    assert_survives(ring, CASES[case])


@pytest.mark.parametrize("how", ["close", "collect"])
def test_views_kept_past_the_consumer_keep_the_ring_mapped_but_not_the_slot(ring: str, how: str) -> None:
    """close() (or collection) with a view still referenced (a numpy array over the last
    body, left in a notebook's globals) keeps the ring mapped for it, warns, and frees the
    slot at once: a producer must not stall on a consumer nobody reads for."""
    assert_survives(
        ring,
        f"""
        bodies = [body[:] for _, body in c.items(timeout=0)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if "{how}" == "close":
                c.close()
                assert any(issubclass(w.category, ResourceWarning) for w in caught), caught
            else:
                del c
                gc.collect()
        assert daqflow.usage(name).consumers == [], daqflow.usage(name)
        assert [bytes(b) for b in bodies] == [bytes([i]) * 8 for i in range(3)]
        p.put(bytes(60000), timeout=5)  # more than what was there: the closed consumer holds nothing back
        del bodies
        gc.collect()
        print("ok")
        """,
    )


def test_a_closed_consumer_with_no_views_left_gives_its_slot_back_at_once(ring: str) -> None:
    """The loop variable still names the last body after the loop: the iteration
    released it, so it holds nothing up and reading it is an error, not a segfault."""
    assert_survives(
        ring,
        """
        with c:
            for _, body in c.items(timeout=0):
                assert len(body) == 8
        try:
            bytes(body)
            print("bad: the last body was not released")
        except ValueError:
            print("ok" if daqflow.usage(name).consumers == [] else "bad: the slot is still held")
        """,
    )


def test_a_port_manager_closed_while_another_thread_waits_for_its_reply(ring: str) -> None:
    """close() from another thread during a request (here, to a server that never
    answers) must not free the connection under the waiting call: the request ends
    (with its timeout, or an error) and the connection is closed after it."""
    assert_survives(
        ring,
        """
        import socket
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        pm = daqflow.PortManager("127.0.0.1", server.getsockname()[1], timeout=1.0)
        outcome = []
        def ask():
            try:
                pm.list()
            except (OSError, ValueError) as e:
                outcome.append(type(e).__name__)
        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.2)
        start = time.monotonic()
        pm.close()
        quick = time.monotonic() - start < 0.5  # close() does not wait for the reply
        t.join(10)
        closed = repr(pm) == "<daqflow.PortManager closed>"
        print("ok" if quick and not t.is_alive() and outcome and closed else f"bad {quick} {outcome} {closed}")
        """,
    )


@pytest.mark.parametrize("wait", ["items", "borrow", "reserve"])
def test_ctrl_c_as_a_wait_succeeds_leaves_nothing_open(ring: str, wait: str) -> None:
    """Python raises KeyboardInterrupt at the first bytecode after the C call in which
    SIGINT arrived, and that call may have succeeded (the library goes on waiting after
    a signal, and the data or space came): the borrow or reservation it opened must not
    stay open, or every later call on the client is BusyError."""
    assert_survives(
        ring,
        f"""
        import os, signal
        c.skip(48)
        wedged = 0
        for attempt in range(5):
            if "{wait}" == "reserve":
                p.put(bytes(p.available()), timeout=1)  # the ring full: reserve waits for space
                free = lambda: c.skip(c.available())
            else:
                free = lambda: p.put(struct.pack("<II", 16, 1) + bytes(8))
            def interrupt():
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.001)
                free()  # within the slice in which SIGINT arrived: the wait succeeds
            t = threading.Thread(target=interrupt)
            t.start()
            try:
                if "{wait}" == "items":
                    for _ in c.items(timeout=5):
                        pass
                elif "{wait}" == "borrow":
                    with c.borrow(16, timeout=5):
                        pass
                else:
                    with p.reserve(16, timeout=5):
                        pass
                t.join()  # SIGINT lands here when the wait did not take it
            except KeyboardInterrupt:
                t.join()
            try:
                if "{wait}" == "reserve":
                    p.put(b"x", timeout=0)
                    c.skip(c.available())
                else:
                    c.skip(c.available())
            except daqflow.BusyError:
                wedged += 1
                break
        print("ok" if wedged == 0 else "bad: a borrow or reservation stayed open")
        """,
    )
