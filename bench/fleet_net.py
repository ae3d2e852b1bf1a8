"""A fleet of three hosts on one machine: network namespaces joined by veth pairs to a bridge.

Each host (a namespace) runs one node of a 3-node JetStream cluster and the per-host part of
Grace over its own copy of the example system; processor partitions and the projector run in
the hosts' namespaces too. Used by `grace bench --only fleet` and by tests/fleet. Needs root
and `ip netns`; everything it creates carries the name prefix `gfl` and a per-run suffix, and
is removed by `Fleet.close()` (or, after a crash, by `remove_leftovers()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grace.errors import GraceError

PREFIX = "gfl"
OWNERS = Path("/run/grace-fleet")  # <run>.owner: the pid that built the run (root-only, gone at boot)
HOSTS = ("alpha", "beta", "gamma")  # partition.owner(h, 2): alpha -> 0, beta and gamma -> 1
CLIENT_PORT, ROUTE_PORT, MONITOR_PORT = 4222, 6222, 8222
GRACE = str(Path(sys.executable).parent / "grace")
EXAMPLE_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"  # what `grace demo init` points at
# How the per-host part of Grace starts on each host (`grace produce` + `grace act` before the agent).
AGENT_STAGES: tuple[tuple[str, ...], ...] = (("agent",),)


class FleetError(GraceError):
    """The fleet's network or one of its processes could not be set up."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if check:
        return _checked(["ip", *args])
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


def _checked(argv: list[str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if r.returncode != 0:
        raise FleetError(f"`{' '.join(argv)}` failed (exit {r.returncode}): {r.stderr.strip()}. "
                         "The fleet needs root and the iproute2 tools (ip netns, ip link).")
    return r


def unavailable() -> str | None:
    """Why a fleet cannot be built here (not root, no `ip netns`), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}probe{os.getpid()}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_pids(ns: str) -> None:
    r = _ip("netns", "pids", ns, check=False)
    for word in r.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), signal.SIGKILL)


def remove_run(run: str) -> None:
    """Kill every process in the run's namespaces and delete its namespaces and links."""
    for ns in _ip("netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(run + "-"):
            _kill_netns_pids(name)
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1 and parts[1].split("@")[0].startswith(run + "-"):
            _ip("link", "del", parts[1].split("@")[0], check=False)
    with contextlib.suppress(OSError):
        (OWNERS / f"{run}.owner").unlink()


def remove_leftovers() -> list[str]:
    """Remove the runs whose building process is gone (a crashed test or bench); their names."""
    runs: set[str] = set()
    for ns in _ip("netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(PREFIX) and "-" in name:
            runs.add(name.split("-")[0])
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1 and parts[1].startswith(PREFIX) and "-" in parts[1]:
            runs.add(parts[1].split("-")[0])
    gone = []
    for run in sorted(runs):
        try:
            owner = int((OWNERS / f"{run}.owner").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner == 0 or not _alive(owner):
            remove_run(run)
            gone.append(run)
    return gone


@dataclass
class Proc:
    """A process started inside a host's namespace, logging to a file."""

    name: str
    ns: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    killed: bool = False  # on purpose (kill()): not a crash

    def start(self) -> Proc:
        self.killed = False
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(["ip", "netns", "exec", self.ns, *self.argv],
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          env=self.env, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, no cleanup of any kind (its children are left to their own parent-death rules)."""
        self.killed = True
        if self.popen is not None and self.alive():
            self.popen.kill()
            self.popen.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.popen is None or not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Host:
    index: int
    name: str
    ns: str
    veth_ns: str  # the end inside the namespace
    veth_br: str  # the end on the bridge: set it down to cut the host off
    ip: str
    system: Path  # its copy of the example system

    @property
    def config(self) -> Path:
        return self.system / "grace.yaml"

    @property
    def nats_url(self) -> str:
        return f"nats://{self.ip}:{CLIENT_PORT}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.ip}:{MONITOR_PORT}"


@dataclass
class Fleet:
    """Three hosts on a bridge, a NATS node each; `start_grace()` adds agents, partitions, projector."""

    root: Path
    run: str = field(default_factory=lambda: PREFIX + secrets.token_hex(2))
    hosts: list[Host] = field(default_factory=list)
    nodes: dict[str, Proc] = field(default_factory=dict)  # host name -> its nats-server
    procs: dict[str, Proc] = field(default_factory=dict)  # "agent-alpha-act", "process-0", "project"
    subnet: str = ""

    @property
    def bridge(self) -> str:
        return f"{self.run}-br"

    @property
    def url(self) -> str:
        """Every node's client URL (for clients outside the namespaces, via the bridge address)."""
        return ",".join(h.nats_url for h in self.hosts)

    def url_for(self, host: Host) -> str:
        """The host's own node first, then the others."""
        return ",".join([host.nats_url, *(h.nats_url for h in self.hosts if h is not host)])

    # ------------------------------------------------------------------ network

    def build_network(self) -> None:
        remove_leftovers()
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / f"{self.run}.owner").write_text(str(os.getpid()))
        self.subnet = _free_subnet()
        _ip("link", "add", self.bridge, "type", "bridge")
        # where br_netfilter is loaded, a firewall's FORWARD policy (Docker sets DROP) would see the
        # bridged traffic between hosts; this bridge is the fleet's own cable, not a router
        _ip("link", "set", "dev", self.bridge, "type", "bridge", "nf_call_iptables", "0",
            "nf_call_ip6tables", "0", "nf_call_arptables", "0", check=False)
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, name in enumerate(HOSTS):
            h = Host(i, name, f"{self.run}-{name}", f"{self.run}-{i}n", f"{self.run}-{i}b",
                     f"{self.subnet}.{10 + i}", self.root / name)
            _ip("netns", "add", h.ns)
            _ip("link", "add", h.veth_br, "type", "veth", "peer", "name", h.veth_ns)
            _ip("link", "set", h.veth_ns, "netns", h.ns)
            _ip("link", "set", h.veth_br, "master", self.bridge, "up")
            _ip("-n", h.ns, "addr", "add", f"{h.ip}/24", "dev", h.veth_ns)
            _ip("-n", h.ns, "link", "set", h.veth_ns, "up")
            _ip("-n", h.ns, "link", "set", "lo", "up")
            self.hosts.append(h)

    def cut(self, host: Host) -> None:
        """Cut `host` off from the others (its end of the bridge goes down)."""
        _ip("link", "set", host.veth_br, "down")

    def reconnect(self, host: Host) -> None:
        _ip("link", "set", host.veth_br, "up")

    def netem(self, host: Host, *spec: str) -> str | None:
        """`tc qdisc ... netem SPEC` on the host's link; the error when netem is unavailable."""
        r = subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "replace", "dev", host.veth_ns,
                            "root", "netem", *spec], capture_output=True, text=True, check=False, timeout=30)
        return None if r.returncode == 0 else (r.stderr.strip() or f"tc exited {r.returncode}")

    def clear_netem(self, host: Host) -> None:
        subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "del", "dev", host.veth_ns, "root"],
                       capture_output=True, check=False, timeout=30)

    # ------------------------------------------------------------------ NATS

    def start_nodes(self, timeout: float = 30.0) -> None:
        routes = ", ".join(f"nats-route://{h.ip}:{ROUTE_PORT}" for h in self.hosts)
        for h in self.hosts:
            d = self.root / "nats" / h.name
            (d / "store").mkdir(parents=True, exist_ok=True)
            conf = d / "server.conf"
            conf.write_text(
                f'server_name: "{h.name}"\nlisten: "{h.ip}:{CLIENT_PORT}"\n'
                f'http: "{h.ip}:{MONITOR_PORT}"\nmax_payload: 1MB\n'
                f'jetstream {{\n  store_dir: "{(d / "store").as_posix()}"\n}}\n'
                f'cluster {{\n  name: "fleet"\n  listen: "{h.ip}:{ROUTE_PORT}"\n  routes: [{routes}]\n}}\n')
            from grace.embedded import find_binary

            self.nodes[h.name] = Proc(f"nats-{h.name}", h.ns, [str(find_binary()), "-c", str(conf)],
                                      d / "server.log", dict(os.environ))
        for name in self.nodes:
            self.start_node(name, timeout)

    def start_node(self, name: str, timeout: float = 30.0) -> None:
        node = self.nodes[name]
        node.start()
        host = next(h for h in self.hosts if h.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{host.monitor_url}/varz", timeout=2):  # noqa: S310
                return
            if not node.alive():
                raise FleetError(f"nats-server of host {name} exited while starting; its log "
                                 f"{node.log} ends with:\n{node.tail(5)}")
            time.sleep(0.1)
        raise FleetError(f"nats-server of host {name} was not up within {timeout:.0f}s; see {node.log}")

    def jsz(self, host: Host) -> dict[str, Any]:
        """The node's /jsz monitoring document (meta leader, streams and their leaders)."""
        with urllib.request.urlopen(f"{host.monitor_url}/jsz?streams=true", timeout=5) as r:  # noqa: S310
            return dict(json.load(r))

    def meta_leader(self) -> str | None:
        for h in self.hosts:
            if self.nodes[h.name].alive():
                with contextlib.suppress(OSError, ValueError):
                    leader = self.jsz(h).get("meta_cluster", {}).get("leader")
                    if leader:
                        return str(leader)
        return None

    # ------------------------------------------------------------------ Grace

    def init_systems(self) -> None:
        """`grace demo init` per host, then the host's name and 3 replicas in its grace.yaml."""
        for h in self.hosts:
            _checked([GRACE, "demo", "init", str(h.system)])
            text = h.config.read_text()
            for old, new in (("host: demo", f"host: {h.name}"),
                             ("nats: {url: null, replicas: 1}", "nats: {url: null, replicas: 3}"),
                             ('http: {listen: "127.0.0.1:8181"}', 'http: {listen: ""}')):
                if old not in text:
                    raise FleetError(f"{h.config}: expected the line {old!r} of the example config")
                text = text.replace(old, new)
            h.config.write_text(text)

    def stage(self, key: str, host: Host, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        """Start `grace ARGV -c host-config --nats ...` in the host's namespace as `key`."""
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        full = [GRACE, *argv, "-c", str(host.config), "--nats", self.url_for(host)]
        p = Proc(key, host.ns, full, logs / f"{key}.log",
                 {**os.environ, "GRACE_LOG_LEVEL": "INFO", **(env or {})})
        self.procs[key] = p.start()
        return p

    def start_agent(self, host: Host) -> None:
        for argv in AGENT_STAGES:
            self.stage(f"agent-{host.name}-{argv[0]}", host, list(argv))

    def start_grace(self) -> None:
        """Agents on every host; partition 0/2 on beta, 1/2 on gamma, the projector on alpha."""
        for h in self.hosts:
            self.start_agent(h)
        self.stage("process-0", self.hosts[1], ["process", "--partition", "0/2", "--data-dir",
                                                str(self.root / "proc0")])
        self.stage("process-1", self.hosts[2], ["process", "--partition", "1/2", "--data-dir",
                                                str(self.root / "proc1")])
        self.stage("project", self.hosts[0], ["project", "--data-dir", str(self.root / "projection")])

    async def wait_ready(self, b: Any, timeout: float = 120.0) -> None:
        """Until every host has snapshots of its protected files (restores have a source) and
        every process still runs. `b` is a grace.bus.Bus connected to `self.url`."""
        from grace import topology

        deadline = time.monotonic() + timeout
        waiting = list(self.hosts)
        while waiting:
            dead = self.dead()
            if dead:
                raise FleetError("a fleet process exited while starting:\n" + "\n".join(dead))
            h = waiting[0]
            try:
                info = await b.js.stream_info(topology.EVENTS, subjects_filter=topology.event_filter(
                    "snapshot", "snapshot_taken", h.name))
                taken = sum((info.state.subjects or {}).values())
            except Exception as exc:  # a timeout while the cluster settles: ask again
                if time.monotonic() > deadline:
                    raise FleetError(f"the cluster did not answer for GRACE_EVENTS within "
                                     f"{timeout:.0f}s ({exc!r}); see {self.root / 'nats'}") from exc
                await asyncio.sleep(1)
                continue
            if taken >= 3:
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise FleetError(f"host {h.name} took no snapshot within {timeout:.0f}s; see "
                                 f"{self.root / 'logs'}")
            await asyncio.sleep(0.3)

    @property
    def dashboard_file(self) -> Path:
        return self.root / "projection" / "dashboard.duckdb"

    def dead(self) -> list[str]:
        """The Grace processes that exited on their own (with their log's end)."""
        return [f"{k} (exit {p.popen.returncode if p.popen else '?'}):\n{p.tail(8)}"
                for k, p in self.procs.items() if not p.alive() and not p.killed]

    def log_files(self) -> list[Path]:
        """Every log the fleet keeps: NATS nodes, the started processes, and the stages each
        agent runs (its host's .grace/logs)."""
        files = [n.log for n in self.nodes.values()] + [p.log for p in self.procs.values()]
        for h in self.hosts:
            files += sorted((h.system / ".grace" / "logs").glob("*.log"))
        return files

    def log_tails(self, lines: int = 25, notable: int = 15) -> str:
        """Each log's last lines, and its last warnings and errors (what a failure report shows)."""
        out = []
        for f in self.log_files():
            try:
                text = f.read_text(errors="replace").splitlines()
            except OSError:
                continue
            loud = [t for t in text if " WARNING " in t or " ERROR " in t or "Traceback" in t]
            out.append(f"==== {f} ({len(text)} lines)")
            if loud:
                out += ["-- last warnings/errors:", *loud[-notable:], "-- last lines:"]
            out += text[-lines:]
        return "\n".join(out)

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Stop Grace, then the nodes, then remove namespaces, links and the owner file."""
        for p in reversed(list(self.procs.values())):
            p.stop(20)
        for n in self.nodes.values():
            n.stop(10)
        remove_run(self.run)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_subnet() -> str:
    """10.231.X (X free of addresses on this machine), so two runs never share a subnet."""
    used = _ip("-4", "-o", "addr", "show", check=False).stdout
    for x in range(secrets.randbelow(200), 256):
        if f"10.231.{x}." not in used:
            return f"10.231.{x}"
    raise FleetError("no free 10.231.X.0/24 subnet for the fleet; remove stale bridges (ip link show)")
