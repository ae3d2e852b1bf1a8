"""dependency_regression against real dist-info metadata in a temp dir, a lock and an OSV file."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from grace import config, events
from producers import deps
from producers.base import CheckError, make_env
from producers.dependency_regression import DependencyRegression
from producers.state import StateStore


def _dist(site: Path, name: str, version: str) -> None:
    d = site / f"{name.replace('-', '_')}-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")


def _trigger(tmp_path: Path, lock: str, advisories: object | None = None) -> DependencyRegression:
    site = tmp_path / "site"
    for name, version in [("requests", "2.31.0"), ("Jinja2", "3.1.2"), ("urllib3", "2.2.0")]:
        _dist(site, name, version)
    (tmp_path / "requirements.lock").write_text(lock)
    adv_path = None
    if advisories is not None:
        adv_path = "advisories.json"
        text = advisories if isinstance(advisories, str) else json.dumps(advisories)
        (tmp_path / adv_path).write_text(text)
    cfg = msgspec.structs.replace(
        config.load(None), config_dir=str(tmp_path),
        dependencies=config.Dependencies(lock="requirements.lock", advisories=adv_path,
                                         site_packages=["site"]))
    return DependencyRegression(make_env(cfg, StateStore(tmp_path / "s")))


async def test_matching_lock_is_clean_and_counts_tracked_dependencies(tmp_path: Path) -> None:
    res = await _trigger(tmp_path, "requests==2.31.0\njinja2==3.1.2  # templating\nurllib3==2.2.0\n").check()
    assert res.findings == [] and res.stats["dependencies_tracked"] == 3


async def test_missing_downgraded_and_changed_pins_are_regressions(tmp_path: Path) -> None:
    lock = "# lock\nrequests==2.32.3\nJinja2==3.1.0\nrich==13.0.0\nurllib3==2.2.0\n"
    res = await _trigger(tmp_path, lock).check()
    got = {f.package: (f.change, f.installed_version) for f in res.findings
           if isinstance(f, events.DependencyRegression)}
    assert got == {"requests": ("downgraded", "2.31.0"), "jinja2": ("changed", "3.1.2"),
                   "rich": ("missing", None)}


async def test_osv_advisory_in_range_is_vulnerable_dependency_with_fixed_version(tmp_path: Path) -> None:
    osv = {"vulns": [
        {"id": "GHSA-9wx4-h78v-vm56", "aliases": ["CVE-2024-35195"], "summary": "certs not verified",
         "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                       "ranges": [{"type": "ECOSYSTEM",
                                   "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]}]},
        {"id": "PYSEC-1", "affected": [{"package": {"name": "jinja2"}, "versions": ["3.1.2", "3.1.3"],
                                         "ranges": [{"type": "ECOSYSTEM", "events": [
                                             {"introduced": "3.0"}, {"fixed": "3.1.4"}]}]}]},
        {"id": "PYSEC-2", "affected": [{"package": {"name": "urllib3"},
                                         "ranges": [{"type": "ECOSYSTEM", "events": [
                                             {"introduced": "1.0"}, {"fixed": "1.26.18"}]}]}]},
    ]}
    res = await _trigger(tmp_path, "requests==2.31.0\n", osv).check()
    vulns = {f.package: f for f in res.findings if isinstance(f, events.VulnerableDependency)}
    assert set(vulns) == {"requests", "jinja2"}
    assert vulns["requests"].fixed_version == "2.32.0" and vulns["requests"].aliases == ["CVE-2024-35195"]
    assert vulns["jinja2"].fixed_version == "3.1.4"
    assert res.stats["vulnerabilities"] == 2


async def test_malformed_lock_line_is_a_check_error_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match=r"requirements.lock:2: .*name==version"):
        await _trigger(tmp_path, "requests==2.31.0\nrequests>=2\n").check()


async def test_malformed_advisory_file_is_a_check_error(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="not valid JSON"):
        await _trigger(tmp_path, "requests==2.31.0\n", "[{oops").check()


def test_osv_last_affected_and_versions_list() -> None:
    adv = deps.Advisory(id="X", package="p", ranges=[[("introduced", "1.0"), ("last_affected", "1.4")]])
    assert deps.affected(adv, "1.4") == (True, None)
    assert deps.affected(adv, "1.5") == (False, None)
    assert deps.affected(adv, "0.9") == (False, None)


def test_running_interpreter_is_the_default_environment() -> None:
    have = deps.installed([])
    assert "msgspec" in have and "packaging" in have
