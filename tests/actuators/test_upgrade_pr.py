"""create_upgrade_pr in a real temporary git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

from actuators.actions.upgrade_pr import bump
from grace import events
from tests.actuators.conftest import World


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def init_repo(root: Path) -> None:
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "requirements.txt").write_text("requests==2.30.0\nurllib3==2.0.1 ; python_version>'3'\n")
    (root / "src" / "requirements-dev.txt").write_text("pytest==8.0.0\n")
    (root / "src" / "pyproject.toml").write_text('[project]\ndependencies = ["Requests[socks]>=2.30.0"]\n')
    (root / ".gitignore").write_text(".grace/\n.grace_snapshots/\nready-*\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@t", "commit", "-q", "-m", "init")


def upgrade(world: World, package: str, version: str | None) -> events.Event:
    return world.command(events.CreateUpgradePr(package=package, version=version, advisory_id="GHSA-x"))


def test_bump_rewrites_only_the_named_package() -> None:
    text = "requests==2.30.0\nrequests-toolbelt==1.0\nfoo_bar>=1.0\n"
    assert bump(text, "requests", "2.32.0") == "requests==2.32.0\nrequests-toolbelt==1.0\nfoo_bar>=1.0\n"
    assert bump(text, "Foo.Bar", "2.0") == "requests==2.30.0\nrequests-toolbelt==1.0\nfoo_bar>=2.0\n"


async def test_an_upgrade_branch_is_created_with_the_bumped_pin_and_its_diff(world: World) -> None:
    init_repo(world.root)
    head = git(world.root, "rev-parse", "HEAD").strip()
    result = await world.executor.handle(upgrade(world, "requests", "2.32.3"))
    assert isinstance(result.data, events.CommandSucceeded), result.data
    d = result.data.details
    assert d["branch"] == "grace/upgrade-requests-2.32.3"
    assert sorted(d["files"]) == ["src/pyproject.toml", "src/requirements.txt"]
    assert "-requests==2.30.0" in d["diff"] and "+requests==2.32.3" in d["diff"]
    assert git(world.root, "show", f"{d['branch']}:src/requirements.txt").startswith("requests==2.32.3\n")
    assert "Requests[socks]>=2.32.3" in git(world.root, "show", f"{d['branch']}:src/pyproject.toml")
    author = git(world.root, "log", "-1", "--format=%an <%ae>", d["branch"]).strip()
    assert author == "Grace <grace@localhost>"
    # the working tree and the current branch are untouched; nothing else changed
    assert git(world.root, "rev-parse", "HEAD").strip() == head
    assert git(world.root, "branch", "--show-current").strip() == "main"
    assert (world.root / "src" / "requirements.txt").read_text().startswith("requests==2.30.0")
    assert git(world.root, "status", "--porcelain", "--untracked-files=no") == ""


async def test_a_dirty_tree_or_a_missing_version_is_a_failed_result(world: World) -> None:
    init_repo(world.root)
    missing = await world.executor.handle(upgrade(world, "requests", None))
    assert isinstance(missing.data, events.CommandFailed) and "no fixed version" in missing.data.reason
    (world.root / "src" / "requirements.txt").write_text("requests==2.31.0\n")
    dirty = await world.executor.handle(upgrade(world, "requests", "2.32.3"))
    assert isinstance(dirty.data, events.CommandFailed) and "uncommitted changes" in dirty.data.reason
    assert "grace/upgrade" not in git(world.root, "branch", "--list")


async def test_names_that_could_inject_into_git_are_refused(world: World) -> None:
    init_repo(world.root)
    for package, version in [("--upload-pack=touch x", "1.0"), ("requests", "1.0;rm -rf /"),
                             ("../../evil", "1.0"), ("requests", "1.0..2")]:
        result = await world.executor.handle(upgrade(world, package, version))
        assert isinstance(result.data, events.CommandFailed), (package, version)
    assert "grace/upgrade" not in git(world.root, "branch", "--list")


async def test_no_pin_of_the_package_is_a_failed_result(world: World) -> None:
    init_repo(world.root)
    result = await world.executor.handle(upgrade(world, "numpy", "2.0.0"))
    assert isinstance(result.data, events.CommandFailed) and "no pin of numpy" in result.data.reason
