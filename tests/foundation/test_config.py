"""grace.yaml: typed, unknown keys and bad values rejected with file:line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace import config
from grace.errors import ValidationErrors

GOOD = """\
host: web-1
data_dir: .grace
nats: {url: null, replicas: 1}
monitor: {interval: 30s, timeout: 5s}
kernels:
  - name: api
    command: [python, api.py]
    critical: true
    heartbeat_timeout: 15s
    health_url: http://127.0.0.1:8080/health
  - name: worker
    command: [python, worker.py]
    pool: {min: 1, max: 8}
    queue: {stream: JOBS, consumer: workers}
protect:
  models: ["models/*.pkl", "models/*.pt"]
  configs: ["config/*.yaml", "config/*.json"]
snapshots: {dir: .grace_snapshots, every: 1h, max_age: 24h, keep: 5}
caches: [cache]
logs: [logs/app.log]
dependencies: {lock: requirements.lock, advisories: advisories.json}
code: {root: src}
playbooks: [playbooks]
http: {listen: "127.0.0.1:8181"}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "grace.yaml"
    p.write_text(text)
    return p


def test_the_design_example_loads_with_typed_durations(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.host == "web-1"
    assert cfg.monitor.interval == 30.0 and cfg.snapshots.max_age == 86400.0
    assert cfg.kernels[0].heartbeat_timeout == 15.0
    assert cfg.kernels[1].pool is not None and cfg.kernels[1].pool.max == 8
    assert cfg.data_path == (tmp_path / ".grace").resolve()  # relative to the config's folder


@pytest.mark.parametrize(("edit", "line", "path", "words"), [
    (("monitor: {interval: 30s, timeout: 5s}", "monitor: {interval: 30s, timeout: 5s, bogus: 1}"),
     4, "monitor.bogus", "unknown key `bogus`"),
    (("heartbeat_timeout: 15s", "heartbeat_timeout: fifteen"), 9, "kernels.0.heartbeat_timeout",
     "expected a duration"),
    (("pool: {min: 1, max: 8}", "pool: {min: 9, max: 8}"), 13, "kernels.1.pool", "min <= max"),
    (("  - name: worker", "  - name: api"), 11, "kernels.1.name", "used twice"),
    (("host: web-1", "host: web.1"), 1, "host", "subject token"),
    (("    critical: true", "    critical: true\n    code: [api.py, ../elsewhere/app.py]"), 9,
     "kernels.0.code.1", "outside the config folder and code.root"),
])
def test_config_errors_name_file_line_and_key_path(tmp_path: Path, edit: tuple[str, str], line: int,
                                                   path: str, words: str) -> None:
    p = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ValidationErrors) as info:
        config.load(p)
    err = info.value.errors[0]
    assert err.file == str(p) and err.line == line and err.path == path
    assert words in str(err)
    assert str(err).startswith(f"{p}:{line}: ")


def test_invalid_yaml_says_where(tmp_path: Path) -> None:
    p = write(tmp_path, "host: [unclosed\n")
    with pytest.raises(Exception, match=rf"{p}:\d+: invalid YAML"):
        config.load(p)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="file not found"):
        config.load(tmp_path / "nope.yaml")


def test_a_kernel_names_its_code_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD.replace("    critical: true",
                                                   "    critical: true\n    code: [api.py, src/shop]")))
    assert cfg.kernels[0].code == ["api.py", "src/shop"] and cfg.kernels[1].code == []


def test_the_example_names_each_kernel_s_code_and_it_exists() -> None:
    cfg = config.load(Path(__file__).resolve().parents[2] / "examples" / "grace.yaml")
    ours = {k.name: k.code for k in cfg.kernels if k.name in ("api", "worker", "reporter")}
    assert ours == {"api": ["api.py"], "worker": ["worker.py"], "reporter": ["reporter.py"]}
    assert all(cfg.path(c).is_file() for code in ours.values() for c in code)
