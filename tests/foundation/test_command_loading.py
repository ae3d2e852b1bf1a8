"""The `grace` command is built from an explicit table; a module that fails to import is loud."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from grace.app import commands
from grace.errors import ExitCode, GraceError


def test_a_module_that_does_not_exist_is_an_error_naming_it() -> None:
    with pytest.raises(commands.CommandLoadError) as err:
        commands.import_part("no_such_stage.cli", "the no-such stage")
    assert isinstance(err.value, GraceError)
    assert "no_such_stage.cli" in str(err.value) and "the no-such stage" in str(err.value)
    assert "make install" in str(err.value)


def test_a_module_without_register_is_an_error_naming_it() -> None:
    with pytest.raises(commands.CommandLoadError, match=r"grace\.errors .*register\(group\)"):
        commands.register_all(click.Group(), [("grace.errors", "the errors module")])


def test_every_table_module_registers_commands() -> None:
    group = click.Group()
    for module, what in commands.COMMAND_MODULES:
        before = set(group.commands)
        commands.register_all(group, [(module, what)])
        assert set(group.commands) - before, f"{module} registered no command"


def test_a_stage_that_fails_to_import_stops_the_cli_naming_the_stage_and_the_cause(
        tmp_path: Path) -> None:
    # a package earlier on the path shadows `control` and fails on import, as a broken install would
    shim = tmp_path / "shim" / "control"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated: a dependency is missing')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shim")}
    out = subprocess.run([sys.executable, "-m", "grace.app", "--help"], check=False,
                         capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == int(ExitCode.ERROR), out.stdout + out.stderr
    assert "control.cli" in out.stderr and "operator control" in out.stderr
    assert "simulated: a dependency is missing" in out.stderr
    assert f"{shim / '__init__.py'}:1" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_cli_lists_every_stage_command_when_nothing_is_broken(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "grace.app", "--help"], check=False,
                         capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in ("produce", "process", "act", "project", "hold", "up", "ping", "demo", "cluster",
                 "auth", "schema", "events", "bench"):
        assert f"  {name} " in out.stdout, name
