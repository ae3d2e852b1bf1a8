"""grace.yaml: typed, validated before anything starts, unknown keys rejected.

Paths in the file are relative to the config file's folder; `Config.path()`
resolves them. Every error names file:line and the key path.
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from grace import triggers_config, yamlfile
from grace.durations import Duration, fmt, parse_duration
from grace.errors import ConfigError, ValidationErrors
from grace.triggers_config import Thresholds

TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")  # a host or name that is one NATS subject token


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Tls(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


class Nats(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str | None = None  # None: the embedded server
    credentials: str | None = None
    tls: Tls | None = None
    replicas: int = 1
    sync: str | None = None  # nats-server sync_interval for the embedded server: "always", "2m", ...
    auth: bool = False
    port: int | None = None  # embedded server port; None picks a free one
    # false: every stage and command uses nats-py's public JetStream API instead of Grace's
    # protocol fast paths (slower; the way out if a nats-py release breaks them).
    # GRACE_FAST_PATH=0 in the environment does the same.
    fast_path: bool = True
    # events the producers keep, in order, while NATS is out of reach; newer ones are refused
    # (an ERROR, and a producer_buffer_overflow event once the link is back)
    outbox_max: int = 10_000


class Monitor(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    interval: Duration = Duration(30)
    timeout: Duration = Duration(5)
    backoff_max: Duration = Duration(300)
    watch_files: bool = True


class Pool(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min: int = 1
    max: int = 1


class Queue(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stream: str
    consumer: str
    max_backlog: int = 100
    low_backlog: int = 10


class Kernel(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    command: list[str]
    critical: bool = False
    heartbeat_timeout: Duration | None = None
    health_url: str | None = None
    pool: Pool | None = None
    queue: Queue | None = None
    cwd: str | None = None
    env: dict[str, str] = {}
    stop_timeout: Duration = Duration(5)
    latency_p95_ms: float = 500.0
    max_rss_mb: float | None = None  # memory budget: over it is memory_pressure for this kernel
    code: list[str] = []  # the code it runs (files or folders): escalations about it carry them


class Shed(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What shed_load may suspend under CPU saturation, and for how long at most."""

    kernels: list[str] = []  # non-critical kernels shed_load may SIGSTOP; empty: none
    max_s: Duration = Duration(300)  # a shed kernel is resumed after this even with no clear event


class Protect(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    models: list[str] = []
    configs: list[str] = []


class Snapshots(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    dir: str = ".grace_snapshots"
    every: Duration = Duration(3600)
    max_age: Duration = Duration(86400)
    keep: int = 5


class Dependencies(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    lock: str | None = None
    advisories: str | None = None
    site_packages: list[str] = []  # target environment; empty: the running interpreter's


class Code(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    root: str | None = None
    tests: str | None = None
    # a tree that does not compile stops `grace up` at phase 3 (false: boot, route the finding)
    block_boot_on_syntax_error: bool = True


class Http(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    listen: str = "127.0.0.1:8181"


class Agent(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    command: list[str] | None = None  # external coding agent, gets the task as a JSON file
    timeout: Duration = Duration(600)


class Projection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    publish_every: Duration = Duration(2)
    degraded_window: Duration = Duration(600)


class Archive(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The log's Parquet archive (projections/archive.py); `dir` None: no archive."""

    dir: str | None = None
    segment: Duration = Duration(3600)  # the stream time one Parquet file covers
    after: Duration = Duration(7 * 86400)  # a segment is written once its end is this old


class Events(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """GRACE_EVENTS retention. max_age None: the stream keeps every event (no limit)."""

    max_age: Duration | None = None


def min_max_age(archive: Archive) -> float:
    """The shortest events.max_age the archive allows: `after` + 2 x `segment`.

    An event waits up to one segment for its segment to end, then `after` for it to be
    written; one more segment is the margin for the archiver to write it.
    """
    return float(archive.after + 2 * archive.segment)


class Holds(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max: Duration = Duration(86400)  # the longest `grace hold add --for` accepted


class ProcessorSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    mode: Literal["act", "observe"] = "act"  # observe: every playbook records, none sends


class RateLimit(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    count: int = 30
    per: Duration = Duration(60)


class Safety(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Rails over every playbook: a refused match is decision_suppressed with the rail's name."""

    max_commands: RateLimit = RateLimit()  # per host, sliding window
    max_pool_restarting: float = 0.5  # of a kernel's instances restarting or suspended at once
    max_chain_depth: int = 3  # command <- result <- command ... past this is a loop


class Retry(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Retries of a failing sink: `max` more tries, `backoff` before the first, times `factor` after."""

    max: int = 5
    backoff: Duration = Duration(1)
    factor: float = 2.0


class NotifySink(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the `notify` action may post (actuators post only to URLs named here)."""

    name: str
    url: str
    format: Literal["cloudevents", "slack", "pagerduty"] = "cloudevents"
    timeout: Duration = Duration(10)
    retry: Retry | None = None  # None: the format's default (pagerduty: 3 tries 30s apart)
    routing_key: str | None = None  # pagerduty: the integration key, or ...
    routing_key_env: str | None = None  # ... the environment variable that holds it

    @property
    def retries(self) -> Retry:
        """The retry policy in effect: the configured one, else the format's default."""
        if self.retry is not None:
            return self.retry
        if self.format == "pagerduty":  # PagerDuty asks for 3 retries 30 s apart
            return Retry(max=3, backoff=Duration(30), factor=1.0)
        return Retry()


class Config(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = ""
    data_dir: str = ".grace"
    nats: Nats = Nats()
    monitor: Monitor = Monitor()
    thresholds: Thresholds = Thresholds()
    kernels: list[Kernel] = []
    protect: Protect = Protect()
    snapshots: Snapshots = Snapshots()
    caches: list[str] = []
    shed: Shed = Shed()
    logs: list[str] = []
    dependencies: Dependencies = Dependencies()
    code: Code = Code()
    playbooks: list[str] = []
    http: Http = Http()
    agent: Agent = Agent()
    projection: Projection = Projection()
    holds: Holds = Holds()
    archive: Archive = Archive()
    events: Events = Events()
    processor: ProcessorSettings = ProcessorSettings()
    safety: Safety = Safety()
    notify: list[NotifySink] = []  # sinks of the `notify` action; empty: notifications are off
    config_dir: str = ""  # set by the loader: the folder relative paths start from

    def path(self, value: str) -> Path:
        """Resolve a path from the config against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.config_dir or ".") / p).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    def kernel(self, name: str) -> Kernel | None:
        return next((k for k in self.kernels if k.name == name), None)


def default_host() -> str:
    """The machine's hostname as a subject token (dots become dashes)."""
    name = socket.gethostname().split(".")[0] or "localhost"
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is Duration:
        return parse_duration(obj)
    raise NotImplementedError(f"no decoder for {tp!r}")


def _inside_code_or_config(cfg: Config, value: str) -> bool:
    """A kernel's `code:` path lies (symlinks and `..` resolved) under the config folder or code.root:
    escalations hand these files to agents and checks, so they stay within what Grace looks after."""
    if not value.strip():
        return False
    p = cfg.path(value).resolve()
    roots = [Path(cfg.config_dir or ".").resolve()]
    if cfg.code.root:
        roots.append(cfg.path(cfg.code.root).resolve())
    return any(p.is_relative_to(r) for r in roots)


def _check_meaning(cfg: Config, doc: yamlfile.YamlDoc | None) -> list[ConfigError]:
    file = doc.file if doc else None
    errors: list[ConfigError] = []

    def err(msg: str, *path: str | int) -> None:
        line = doc.line_of(tuple(path)) if doc else None
        errors.append(ConfigError(msg, file=file, line=line, path=".".join(map(str, path))))

    if not TOKEN.match(cfg.host):
        err(f"host {cfg.host!r} must be letters, digits, '-' or '_' (it is a NATS subject token)", "host")
    if cfg.nats.outbox_max < 1:
        err(f"nats.outbox_max must be at least 1, got {cfg.nats.outbox_max}", "nats", "outbox_max")
    if cfg.nats.replicas not in (1, 3, 5):
        err(f"nats.replicas must be 1, 3 or 5, got {cfg.nats.replicas}", "nats", "replicas")
    if cfg.monitor.interval <= 0:
        err("monitor.interval must be more than 0s", "monitor", "interval")
    if cfg.monitor.timeout <= 0:
        err("monitor.timeout must be more than 0s", "monitor", "timeout")
    seen: set[str] = set()
    for i, k in enumerate(cfg.kernels):
        if not TOKEN.match(k.name):
            err(f"kernel name {k.name!r} must be letters, digits, '-' or '_'", "kernels", i, "name")
        if k.name in seen:
            err(f"kernel name {k.name!r} is used twice; kernel names must be unique", "kernels", i, "name")
        seen.add(k.name)
        if not k.command:
            err(f"kernel {k.name!r} has an empty command; give the program and its arguments as a list",
                "kernels", i, "command")
        if k.pool and not 0 <= k.pool.min <= k.pool.max:
            err(f"kernel {k.name!r}: pool needs 0 <= min <= max, got min={k.pool.min} max={k.pool.max}",
                "kernels", i, "pool")
        for j, c in enumerate(k.code):
            if not _inside_code_or_config(cfg, c):
                err(f"kernel {k.name!r}: code path {c!r} resolves to {cfg.path(c)}, outside the config "
                    f"folder and code.root; name files of the service Grace runs, relative to the config "
                    "file", "kernels", i, "code", j)

    for i, name in enumerate(cfg.shed.kernels):
        shed = cfg.kernel(name)
        if shed is None:
            err(f"shed.kernels names {name!r}, which is not a kernel of this config; use one of: "
                f"{', '.join(x.name for x in cfg.kernels) or 'none'}", "shed", "kernels", i)
        elif shed.critical:
            err(f"shed.kernels names {name!r}, which is critical: a critical kernel is never shed; "
                "remove it from shed.kernels", "shed", "kernels", i)
    if cfg.shed.max_s <= 0:
        err("shed.max_s must be more than 0s", "shed", "max_s")
    if cfg.holds.max <= 0:
        err("holds.max must be more than 0s", "holds", "max")
    if cfg.safety.max_commands.count < 1 or cfg.safety.max_commands.per <= 0:
        err("safety.max_commands needs count >= 1 and per > 0s", "safety", "max_commands")
    if not 0 < cfg.safety.max_pool_restarting <= 1:
        err(f"safety.max_pool_restarting is a fraction of a pool in (0, 1], got "
            f"{cfg.safety.max_pool_restarting}", "safety", "max_pool_restarting")
    if cfg.safety.max_chain_depth < 1:
        err("safety.max_chain_depth must be at least 1", "safety", "max_chain_depth")
    if cfg.snapshots.keep < 1:
        err("snapshots.keep must be at least 1 (the last good copy is always kept)", "snapshots", "keep")
    _check_notify(cfg, err)
    _check_retention(cfg, err)
    return errors


def _check_retention(cfg: Config, err: Callable[..., None]) -> None:
    a = cfg.archive
    if a.segment <= 0:
        err("archive.segment must be more than 0s", "archive", "segment")
    if a.after < 0:
        err("archive.after cannot be negative", "archive", "after")
    max_age = cfg.events.max_age
    if max_age is None:
        return
    if not a.dir:
        err(f"events.max_age ({fmt(max_age)}) would expire events from GRACE_EVENTS for good: it "
            "is allowed only with the archive on. Set archive.dir (events are written there "
            "before they expire), or remove events.max_age to keep every event in the stream",
            "events", "max_age")
    elif max_age < min_max_age(a):
        err(f"events.max_age ({fmt(max_age)}) is shorter than archive.after + 2 x archive.segment "
            f"({fmt(min_max_age(a))}): events could expire before their segment is archived. Raise "
            f"events.max_age to at least {fmt(min_max_age(a))} or lower archive.after",
            "events", "max_age")


_ABSENT = object()


def _thresholds(doc: yamlfile.YamlDoc, flat: object) -> Thresholds:
    """The flat `thresholds:` section as each trigger's options (grace.triggers_config)."""
    if flat is _ABSENT:
        return Thresholds()
    owners = triggers_config.owners()
    if isinstance(flat, dict):
        unknown = [k for k in flat if k not in owners]
        if unknown:
            raise ValidationErrors([_unknown_threshold(doc, str(k), owners) for k in unknown])
    try:
        checked = msgspec.convert(flat, triggers_config.FlatThresholds, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ValidationErrors([yamlfile.error_from_validation(doc, exc, ("thresholds",))]) from None
    return triggers_config.compose(checked)


def _unknown_threshold(doc: yamlfile.YamlDoc, key: str, owners: dict[str, list[str]]) -> ConfigError:
    close = difflib.get_close_matches(key, list(owners), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    known = "; ".join(f"{t}: {', '.join(k for k, o in owners.items() if t in o)}"
                      for t in triggers_config.OPTIONS if any(t in o for o in owners.values()))
    return ConfigError(f"unknown key `{key}`{hint}; remove it or fix its spelling. Each trigger's "
                       f"options: {known}", file=doc.file, line=doc.line_of(("thresholds", key)),
                       path=f"thresholds.{key}")


def _check_notify(cfg: Config, err: Callable[..., None]) -> None:
    names: set[str] = set()
    for i, s in enumerate(cfg.notify):
        if not TOKEN.match(s.name):
            err(f"notify sink name {s.name!r} must be letters, digits, '-' or '_'", "notify", i, "name")
        if s.name in names:
            err(f"notify sink name {s.name!r} is used twice; sink names must be unique",
                "notify", i, "name")
        names.add(s.name)
        if not re.match(r"^https?://[^/\s]+", s.url):
            err(f"notify sink {s.name!r}: url {s.url!r} is not an http(s) URL; give the webhook's "
                "full address, e.g. https://hooks.slack.com/services/...", "notify", i, "url")
        if s.timeout <= 0:
            err(f"notify sink {s.name!r}: timeout must be more than 0s", "notify", i, "timeout")
        r = s.retries
        if r.max < 0 or r.backoff <= 0 or r.factor < 1:
            err(f"notify sink {s.name!r}: retry needs max >= 0, backoff > 0s and factor >= 1",
                "notify", i, "retry")
        keys = (s.routing_key is not None) + (s.routing_key_env is not None)
        if s.format == "pagerduty" and keys != 1:
            err(f"notify sink {s.name!r}: a pagerduty sink needs exactly one of routing_key (the "
                "Events API v2 integration key) or routing_key_env (the variable holding it)",
                "notify", i, "routing_key")
        if s.format != "pagerduty" and keys:
            err(f"notify sink {s.name!r}: routing_key is for pagerduty sinks only; remove it",
                "notify", i, "routing_key")


def from_doc(doc: yamlfile.YamlDoc, config_dir: str) -> Config:
    """Validate a parsed YAML document as a Config; raise ValidationErrors."""
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ValidationErrors([ConfigError("the config must be a mapping of keys to values",
                                            file=doc.file, line=1)])
    data = dict(data)
    flat = data.pop("thresholds", _ABSENT)
    try:
        cfg = msgspec.convert(data, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ValidationErrors([yamlfile.error_from_validation(doc, exc)]) from None
    thresholds = _thresholds(doc, flat)
    cfg = msgspec.structs.replace(cfg, config_dir=config_dir, host=cfg.host or default_host(),
                                  thresholds=thresholds)
    errors = _check_meaning(cfg, doc)
    if errors:
        raise ValidationErrors(errors)
    return cfg


def load(path: str | Path | None) -> Config:
    """Load grace.yaml (or defaults when `path` is None) and validate it."""
    if path is None:
        return msgspec.structs.replace(Config(), host=default_host(), config_dir=str(Path.cwd()))
    p = Path(path)
    doc = yamlfile.load(p)
    return from_doc(doc, str(p.resolve().parent))
