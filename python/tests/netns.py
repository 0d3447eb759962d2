"""Two hosts in network namespaces, as tests/remote_support makes them for the Rust tests:
host a and host b joined by a veth pair, each with its own /dev/shm (a directory bind-mounted
over it in every process started there), its own /etc/hosts (`ip netns exec` binds
/etc/netns/NS/hosts) and port file. Host a runs daqportmgr (port 30000) and ringmaster.
Everything is torn down by close(): the processes in the namespaces, the namespaces,
/etc/netns/NS and the shm and state directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

WRAP = 'mount --bind "$DF_SHM" /dev/shm && exec "$@"'


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Host:
    def __init__(self, tag: str, letter: str) -> None:
        self.ns = f"dfpy-{tag}-{letter}"
        self.short = f"h{letter}{tag}"
        self.name = f"{self.short}.dfnet.test"
        self.shm = Path(f"/dev/shm/dfpy-{tag}-{letter}.shmdir")
        self.state = Path(tempfile.mkdtemp(prefix=f"dfpy-{tag}-{letter}-"))


class Net:
    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.hosts: List[Host] = []
        self.daemons: List[subprocess.Popen] = []

    def wire(self) -> None:
        tag = str(os.getpid() % 100_000)
        for letter in "ab":
            host = Host(tag, letter)
            ip("netns", "add", host.ns)  # raises OSError where namespaces cannot be made
            self.hosts.append(host)
            shutil.rmtree(host.shm, ignore_errors=True)
            host.shm.mkdir(parents=True)
        a, b = self.hosts
        ip("-n", a.ns, "link", "set", "lo", "up")
        ip("-n", b.ns, "link", "set", "lo", "up")
        ip("link", "add", f"vp{tag}a", "netns", a.ns, "type", "veth", "peer", "name", f"vp{tag}b", "netns", b.ns)
        ip("-n", a.ns, "addr", "add", "10.92.1.1/24", "dev", f"vp{tag}a")
        ip("-n", b.ns, "addr", "add", "10.92.1.2/24", "dev", f"vp{tag}b")
        ip("-n", a.ns, "link", "set", f"vp{tag}a", "up")
        ip("-n", b.ns, "link", "set", f"vp{tag}b", "up")
        hosts = "127.0.0.1 localhost\n::1 localhost\n"
        hosts += f"10.92.1.1 {a.name} {a.short}\n10.92.1.2 {b.name} {b.short}\n"
        for h in self.hosts:
            Path(f"/etc/netns/{h.ns}").mkdir(parents=True, exist_ok=True)
            Path(f"/etc/netns/{h.ns}/hosts").write_text(hosts)

    def command(self, i: int, argv: List[str]) -> List[str]:
        return ["ip", "netns", "exec", self.hosts[i].ns, "sh", "-c", WRAP, "sh", *argv]

    def env(self, i: int) -> dict:
        h = self.hosts[i]
        env = {k: v for k, v in os.environ.items() if k not in ("DAQFLOW_FEEDER", "DAQFLOW_RINGMASTER")}
        env.update(DF_SHM=str(h.shm), DAQPORTMGR_PORTFILE=str(h.state / "listen.port"),
                   DAQFLOW_FEEDER_LOG=str(h.state / "feeder.log"))
        return env

    def popen(self, i: int, argv: List[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.command(i, argv), env=self.env(i), **kw)

    def run(self, i: int, argv: List[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(i, argv), env=self.env(i), capture_output=True, text=True, timeout=timeout)

    def start_daemons(self, i: int) -> None:
        h = self.hosts[i]
        bin_ = Path(self.stage, "bin")
        quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.daemons.append(self.popen(i, [str(bin_ / "daqportmgr"), "-listen", "30000",
                                           "-portfile", str(h.state / "listen.port"),
                                           "-pidfile", str(h.state / "portmgr.pid"),
                                           "-log", str(h.state / "portmgr.log")], **quiet))
        self._wait(lambda: self.run(i, [str(bin_ / "lsservices")]).returncode == 0, "daqportmgr")
        log = h.state / "ringmaster.log"
        self.daemons.append(self.popen(i, [str(bin_ / "ringmaster"), "--portmgr-port", "30000",
                                           "--log", str(log)], **quiet))
        self._wait(lambda: log.exists() and "registered as RingMaster on port" in log.read_text()
                   and "RingMaster" in self.run(i, [str(bin_ / "lsservices")]).stdout, "ringmaster")

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + 20
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up")
            time.sleep(0.1)

    def log(self, i: int, name: str) -> str:
        path = self.hosts[i].state / name
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for d in self.daemons:
            d.terminate()
        for d in self.daemons:
            try:
                d.wait(5)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        for h in self.hosts:
            # What still runs in our namespaces was started by this test (feeders).
            out = subprocess.run(["ip", "netns", "pids", h.ns], capture_output=True, text=True).stdout
            for pid in out.split():
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
            shutil.rmtree(f"/etc/netns/{h.ns}", ignore_errors=True)
            shutil.rmtree(h.shm, ignore_errors=True)
            shutil.rmtree(h.state, ignore_errors=True)


def make(stage: Optional[str]) -> Net:
    """Two hosts, or OSError saying why they cannot be made here."""
    if not stage:
        raise OSError("DAQFLOW_STAGE is not set (run the tests with make check-python)")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise OSError("network namespaces need root and `ip` (iproute2)")
    net = Net(stage)
    try:
        net.wire()
    except BaseException:
        net.close()
        raise
    return net
