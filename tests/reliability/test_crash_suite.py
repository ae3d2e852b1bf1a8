"""The crash suite: 20,000 events through real `grace process`, `grace act` and `grace project`
while each stage is SIGKILLed several times and nats-server is SIGKILLed and restarted.

The test stands in for the producers: it publishes the trigger events itself (acked,
bus.publish_many). One event in 1,000 matches a playbook whose action restarts a real
kernel; each kernel process appends its pid to a file when it starts, so a restart done
twice would show as one process too many. Afterwards: nothing lost, nothing twice, the
live projection equals a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from pathlib import Path

import duckdb

from grace import bus as bus_mod
from grace import events, topology
from grace.embedded import EmbeddedServer
from tests.projections.live import tables
from tests.reliability.pipeline import Stage, count_subjects, data_of, duplicates, read_log, write_config
from tests.support import grace_cmd, wait_for

N_EVENTS = 20_000
BATCH = 500
EVERY = 1_000  # one event in EVERY matches the playbook: N_EVENTS / EVERY commands
KILLS = {"process": 3, "act": 3, "project": 3, "nats": 2}
HOST = "crashhost"
RESULT_TYPES = {"command_succeeded", "command_failed", "command_skipped"}

PLAYBOOKS = """
playbooks:
  - name: crash_restart
    description: One kernel restart per matching event, no cooldown, so effects can be counted.
    on: cpu_saturation
    where: {percent: {ge: 100}}
    do:
      - restart_kernel: {kernel: k}
"""

# Every kernel process records its pid as it starts, then becomes `sleep`. A process that a
# back-to-back restart SIGTERMs before its shell ran misses the file, and a kernel_started/
# kernel_restarted event can die with a SIGKILLed actuator before it is published; the two
# never miss the same process (after an actuator kill the next restart is seconds away), so
# the processes started are the union of both: a restart done twice shows as one too many.
KERNEL = 'echo $$ >> "$STARTS"; exec sleep 3600'


def config(folder: Path, starts: Path) -> Path:
    body = (f"host: {HOST}\nprojection: {{publish_every: 0.5s}}\n"
            f"kernels:\n  - name: k\n    command: [sh, -c, '{KERNEL}']\n"
            f"    env: {{STARTS: '{starts}'}}\n")
    return write_config(folder, body, PLAYBOOKS)


def trigger(b: bus_mod.Bus, i: int) -> events.Event:
    percent = 100.0 if i % EVERY == 0 else 50.0
    return b.event(events.CpuSaturation(scope="system", percent=percent, threshold=90.0, samples=3),
                   id=f"crash-{i}")


async def publish_acked(b: bus_mod.Bus, evs: list[events.Event]) -> None:
    """Publish until the broker acked every event; a retry after an outage dedupes by id."""
    for _ in range(240):
        try:
            await b.publish_many(evs, timeout=5)
            return
        except Exception:  # noqa: BLE001 - nats-server is being restarted
            await asyncio.sleep(0.25)
    raise AssertionError("events could not be published within a minute of retries")


def kernel_pids(starts: Path) -> list[int]:
    return [int(x) for x in starts.read_text().split()] if starts.exists() else []


def dashboard_seq(path: Path) -> int:
    """The last sequence the published dashboard file reflects (0 while there is none)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        row = con.execute("SELECT last_seq FROM projection_state").fetchone()
        return int(row[0]) if row else 0
    except duckdb.Error:
        return 0
    finally:
        con.close()


async def test_crash_suite_sigkill_every_stage_and_nats_loses_nothing_and_acts_once(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    seed = int(os.environ.get("GRACE_CRASH_SEED", "20261128"))  # another seed: other kill moments
    rng = random.Random(seed)
    starts = tmp_path / "kernel-starts.txt"
    cfg = config(tmp_path / "cfg", starts)
    data = tmp_path / "data"
    url = fresh_server.url
    stages = {n: Stage(n, cfg, url, data) for n in ("project", "act", "process")}
    b = await bus_mod.connect_and_ensure(url, host=HOST, source=f"grace/{HOST}/crash-suite")
    plan = [k for k, n in KILLS.items() for _ in range(n)]
    rng.shuffle(plan)
    batches = N_EVENTS // BATCH
    at = dict(zip(sorted(rng.sample(range(1, batches), len(plan))), plan, strict=True))
    kills: Counter[str] = Counter()
    revived: Counter[str] = Counter()

    def revive(*names: str) -> bool:
        """Do what `grace up`'s watchdog does: restart a stage that could not reach NATS while
        starting (a stage connects once, fail-fast, then reconnects forever: a start during an
        outage, or while JetStream is still recovering, exits); anything else fails."""
        for s in (stages[n] for n in names or stages):
            if not s.alive():
                tail = s.tail(3)
                assert "cannot connect to NATS" in tail or "nats.errors." in tail, (
                    f"{s.name} exited by itself; its log ends:\n{s.tail()}")
                revived[s.name] += 1
                s.start()
        return True

    try:
        for s in stages.values():
            s.start()
        await wait_for(lambda: len(kernel_pids(starts)) == 1, timeout=60)
        for n in range(batches):
            victim = at.get(n)
            if victim == "nats":
                fresh_server.kill()
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # spacing: stages see the outage
                fresh_server.restart()
            elif victim is not None:
                stages[victim].kill()
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                stages[victim].start()
            if victim:
                kills[victim] += 1
            revive()
            await publish_acked(b, [trigger(b, i) for i in range(n * BATCH, (n + 1) * BATCH)])
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # kills land at different points of the work
        want = N_EVENTS // EVERY
        results = topology.event_filter("result", "*", HOST)

        async def all_results() -> bool:
            revive()
            return await count_subjects(b, results) >= want

        await wait_for(all_results, timeout=180, interval=0.5)
        for name in ("process", "act"):
            assert stages[name].stop() == 0, f"{name} did not stop cleanly; see {stages[name].log}"
        last = (await b.js.stream_info(topology.EVENTS)).state.last_seq
        await wait_for(lambda: revive("project") and dashboard_seq(data / "dashboard.duckdb") >= last,
                       timeout=120, interval=0.3)
        assert stages["project"].stop() == 0
        log = await read_log(b)
    finally:
        for s in stages.values():
            s.kill()
        for pid in kernel_pids(starts):  # kernels of a failed run (the actuator stops them otherwise)
            _kill_quietly(pid)
        await b.close()

    ids = [e.id for e in log]
    published = {f"crash-{i}" for i in range(N_EVENTS)}
    lost = published - set(ids)
    dup = duplicates(ids)
    issued = [data_of(e) for e in log if e.type == "command_issued"]
    commands = [d["command_id"] for d in issued]
    result_of = Counter(data_of(e)["command_id"] for e in log if e.type in RESULT_TYPES)
    restarts = [data_of(e) for e in log if e.type == "command_succeeded"]
    spawned = set(kernel_pids(starts)) | {data_of(e)["pid"] for e in log
                                          if e.type in ("kernel_started", "kernel_restarted")}
    effects = len(spawned) - 1  # one is the kernel's first start
    print(f"crash suite: seed={seed} events={N_EVENTS} kills={dict(sorted(kills.items()))} "
          f"losses={len(lost)} duplicates={len(dup)} commands={len(commands)} "
          f"results={sum(result_of.values())} kernel_restarts={effects} log={len(log)} "
          f"restarted_after_connect_failure={dict(revived)}")
    assert sum(kills.values()) == sum(KILLS.values())
    assert not lost and not dup
    assert len(commands) == len(set(commands)) == want
    assert {c: result_of.get(c, 0) for c in commands} == dict.fromkeys(commands, 1)
    assert set(result_of) == set(commands)
    assert len(restarts) == want, [r for r in log if r.type == "command_failed"]
    assert effects == want  # each restart command started exactly one new kernel process
    replayed = tmp_path / "replayed.duckdb"
    done = grace_cmd("replay", "--into", str(replayed), "--nats", url, "--until", str(last),
                     timeout=180)
    assert done.returncode == 0, done.stderr
    assert tables(replayed) == tables(data / "projection.duckdb")


def _kill_quietly(pid: int) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # kernels run in their own session: the group is theirs
