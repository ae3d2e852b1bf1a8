"""Where the `grace` command's subcommands come from: one explicit table, loaded loudly.

Each module in COMMAND_MODULES has `register(group: click.Group) -> None`. A module that
cannot be imported is a broken install or a bug, never "a stage without commands": the
error names the module, the file and line that failed, and what to do.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import cast

import click

from grace.cliutil import fail
from grace.errors import GraceError

# module -> what it provides, for the error message; `grace --help` sorts the commands itself
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("producers.cli", "the producers stage (grace produce, grace check)"),
    ("processors.cli", "the processor stage (grace process, grace playbooks)"),
    ("actuators.cli", "the actuator stage (grace act, snapshots)"),
    ("projections.cli", "the projection stage (grace project, dashboard, replay)"),
    ("control.cli", "operator control (grace hold, approve, deny, approvals)"),
    ("grace.app.up", "grace up"),
    ("grace.app.agent", "grace agent"),
    ("grace.app.ping", "grace ping"),
    ("grace.app.demo", "grace demo"),
    ("grace.app.cluster", "grace cluster"),
    ("grace.app.auth_cli", "grace auth"),
)


class CommandLoadError(GraceError):
    """A module the `grace` command is built from could not be imported."""


def import_part(module: str, what: str) -> ModuleType:
    """Import `module` or raise CommandLoadError naming it, where it failed and why."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # any import-time failure: a broken install or a bug in that module
        raise CommandLoadError(
            f"cannot load {what}: importing {module} failed at {_where(exc)}: "
            f"{type(exc).__name__}: {exc}. Fix that file, or reinstall Grace (make install) if the "
            "module is missing from the install.") from exc


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "import time"
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"


def register_all(group: click.Group, modules: Iterable[tuple[str, str]] = COMMAND_MODULES) -> None:
    """Import every module of the table and let it add its commands to `group`."""
    for module, what in modules:
        mod = import_part(module, what)
        register = cast("Callable[[click.Group], None] | None", getattr(mod, "register", None))
        if register is None:
            raise CommandLoadError(f"{module} ({what}) has no register(group) function; add one "
                                   "that adds its click commands to the group")
        register(group)


class GraceGroup(click.Group):
    """The top-level group: subcommands come from COMMAND_MODULES on first use, not at import."""

    _loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            register_all(self)
        except CommandLoadError as exc:
            fail(str(exc), exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)
