"""Check a hold's target against the config before it goes into the log.

A hold on something the config does not manage would hold nothing and say nothing: the
operator who typed `kernel:apii` at 3 a.m. believes the api is safe. So every name is
checked here, and a path is stored as findings name it (relative to the protected root).
"""

from __future__ import annotations

from pathlib import Path

from grace import holds, protect
from grace.config import Config
from grace.errors import GraceError, InvalidValue


class TargetError(GraceError):
    """A hold target that names nothing this config manages."""


def normalize(cfg: Config, text: str, playbook_names: list[str] | None = None) -> holds.Target:
    """The target as it will be stored; TargetError says what is wrong and what is allowed.

    `playbook_names`: the playbooks the config loads (checked only for `playbook:`)."""
    try:
        target = holds.parse_target(text)
    except InvalidValue as exc:
        raise TargetError(str(exc)) from None
    if target.kind == "path":
        return holds.Target("path", _protected_path(cfg, target.name))
    if target.kind == "kernel":
        _check_kernel(cfg, target)
    elif target.kind == "playbook":
        names = sorted(playbook_names or [])
        if target.name not in names:
            raise TargetError(
                f"hold target {text!r}: no playbook named {target.name!r} is loaded from this "
                f"config's playbooks ({', '.join(names) or 'none'}). Check the name with "
                "`grace playbooks validate`.")
    return target


def _protected_path(cfg: Config, typed: str) -> str:
    """`typed` as the operator wrote it (relative to the current folder, absolute, or as
    findings name it), as the name findings and restore commands use."""
    known = {p: protect.relative(cfg, p) for p, _ in protect.protected_files(cfg)}
    raw = Path(typed).expanduser()
    candidates = [raw] if raw.is_absolute() else [Path.cwd() / raw, protect.root(cfg) / raw]
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved in known:
            return known[resolved]
    listed = ", ".join(sorted(known.values())) or "none (protect.models/protect.configs match no file)"
    raise TargetError(
        f"hold target 'path:{typed}' is not a protected file of this config (protected root "
        f"{protect.root(cfg)}); protected files: {listed}. Name one of them, e.g. "
        f"path:{next(iter(sorted(known.values())), 'config/app.yaml')}.")


def _check_kernel(cfg: Config, target: holds.Target) -> None:
    kernel = cfg.kernel(target.name)
    if kernel is None:
        names = ", ".join(k.name for k in cfg.kernels) or "none"
        raise TargetError(f"hold target '{target}': the config has no kernel named "
                          f"{target.name!r} (kernels: {names}).")
    size = kernel.pool.max if kernel.pool else 1
    if target.instance is not None and not 0 <= target.instance < size:
        raise TargetError(
            f"hold target '{target}': kernel {target.name!r} has instances 0..{size - 1} "
            f"(pool max {size}); use kernel:{target.name}/<0..{size - 1}>, or kernel:{target.name} "
            "for every instance.")
