"""create_upgrade_pr: a local git branch `grace/upgrade-<package>-<version>` with the pin bumped.

The commit is built with git plumbing (a temporary index), so the working tree of
a running service is never switched; nothing is pushed. Package and version are
checked against strict patterns before they reach a git argument or a branch name.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
from pathlib import Path

from actuators import checks
from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.errors import ActionError

PACKAGE_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
VERSION_RE = re.compile(r"^[0-9]+(?:\.[0-9A-Za-z]+){0,10}$")
PIN_RE = re.compile(r"(?<![A-Za-z0-9._-])(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]\n]*\])?"
                    r"(?P<sp>\s*)(?P<op>===|==|~=|>=)\s*(?P<ver>[A-Za-z0-9][A-Za-z0-9.*+!_-]*)")
GIT_ID = ["-c", "user.name=Grace", "-c", "user.email=grace@localhost"]
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bump(text: str, package: str, version: str) -> str:
    """`text` with every pin of `package` set to `version` (==, ===, ~= and >= pins)."""
    want = normalize(package)

    def sub(m: re.Match[str]) -> str:
        if normalize(m["name"]) != want:
            return m.group(0)
        return f"{m['name']}{m['extras'] or ''}{m['sp']}{m['op']}{version}"

    return PIN_RE.sub(sub, text)


def git(root: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> str:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, input=input,
                       timeout=60, env={**os.environ, **(env or {})}, check=False)
    if check and r.returncode != 0:
        raise ActionError(f"git {args[0]} failed in {root}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def pin_files(ctx: ActionContext, top: Path) -> list[Path]:
    """dependencies.lock, requirements*.txt under the code root, and pyproject.toml."""
    root = checks.code_root(ctx.cfg)
    found: list[Path] = []
    if ctx.cfg.dependencies.lock:
        found.append(ctx.cfg.path(ctx.cfg.dependencies.lock).resolve())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        found += [Path(dirpath, f).resolve() for f in filenames
                  if f == "pyproject.toml" or (f.startswith("requirements") and f.endswith(".txt"))]
    return sorted({p for p in found if p.is_file() and p.is_relative_to(top)})


async def plan(ctx: ActionContext, cmd: events.CreateUpgradePr) -> Target:
    """Check the request and the repository; git runs in a thread, off the actuator's loop."""
    return await asyncio.to_thread(_plan, ctx, cmd)


def _plan(ctx: ActionContext, cmd: events.CreateUpgradePr) -> Target:
    if not PACKAGE_RE.match(cmd.package):
        raise ActionError(f"package name {cmd.package!r} is not a valid distribution name: refused")
    if cmd.version is None:
        raise ActionError(f"no fixed version of {cmd.package} is known (advisory "
                          f"{cmd.advisory_id or '?'}); nothing to upgrade to")
    if not VERSION_RE.match(cmd.version):
        raise ActionError(f"version {cmd.version!r} is not a plain release version: refused")
    root = checks.code_root(ctx.cfg)
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                       text=True, timeout=30, check=False)
    if r.returncode != 0:
        raise ActionError(f"code root {root} is not a git repository (code.root in the config)")
    top = Path(r.stdout.strip()).resolve()
    dirty = git(top, "status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        raise ActionError(f"the working tree of {top} has uncommitted changes ({dirty.splitlines()[0]}"
                          "…); commit or stash them before Grace creates an upgrade branch")
    branch = f"grace/upgrade-{cmd.package}-{cmd.version}"
    git(top, "check-ref-format", "--branch", branch)
    return {"repo": str(top), "branch": branch, "base": git(top, "rev-parse", "HEAD").strip()}


async def apply(ctx: ActionContext, cmd: events.CreateUpgradePr, target: Target) -> Details:
    """Commit the bumped pins on a new branch; git runs in a thread, off the actuator's loop."""
    return await asyncio.to_thread(_apply, ctx, cmd, target)


def _apply(ctx: ActionContext, cmd: events.CreateUpgradePr, target: Target) -> Details:
    top, branch, base = Path(target["repo"]), target["branch"], target["base"]
    existing = git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()
    if existing:  # created before a crash, or by an earlier command: report it, do not redo it
        return {**target, "commit": existing, "created": False,
                "diff": git(top, "diff", f"{existing}~1", existing)}
    if cmd.version is None:  # plan refused it; a command replayed past plan must not get further
        raise ActionError(f"no fixed version of {cmd.package} is known; nothing to upgrade to")
    changed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(top, "read-tree", base, env=env)
        for f in pin_files(ctx, top):
            rel = f.relative_to(top).as_posix()
            old = git(top, "show", f"{base}:{rel}", check=False)
            new = bump(old, cmd.package, cmd.version)
            if not old or new == old:
                continue
            blob = git(top, "hash-object", "-w", "--stdin", input=new).strip()
            git(top, "update-index", "--cacheinfo", f"100644,{blob},{rel}", env=env)
            changed.append(rel)
        if not changed:
            raise ActionError(f"no pin of {cmd.package} found in the lock or requirements files "
                              f"under {top}; nothing to bump")
        tree = git(top, "write-tree", env=env).strip()
    msg = (f"Upgrade {cmd.package} to {cmd.version}\n\nAdvisory: {cmd.advisory_id or 'n/a'}\n"
           f"Created by Grace (command {ctx.command_id}).\n")
    commit = git(top, *GIT_ID, "commit-tree", tree, "-p", base, "-m", msg).strip()
    git(top, "update-ref", f"refs/heads/{branch}", commit, "")  # "" : only if it does not exist
    return {**target, "commit": commit, "created": True, "files": changed,
            "diff": git(top, "diff", base, commit)}


ACTION = Action(events.CreateUpgradePr, plan, apply, lambda c: c.package)
