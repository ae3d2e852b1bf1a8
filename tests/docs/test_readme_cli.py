"""Every `grace ...` command the README shows exists, takes the options shown, and has --help.

Commands come from the README's code blocks (the CLI table and every example) and from
its inline `grace ...` spans; the command tree is the installed `grace` entry point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points

import click
import pytest
from click.testing import CliRunner

from tests.docs.readme import README, blocks, section
from tests.support import grace_cmd

WORD = re.compile(r"^[a-z][a-z-]*$")  # a (sub)command name; placeholders are upper case
OPTION = re.compile(r"(?<![\w-])(--?[a-z][\w-]*)")
INLINE = re.compile(r"`(?:\.venv/bin/)?(grace [^`]+)`")
SAME_OPTIONS = ("-c", "--nats", "--data-dir")  # "[same options]" in the CLI table: grace up's


@dataclass(frozen=True)
class Usage:
    path: tuple[str, ...]  # the command words after `grace`
    options: tuple[str, ...]
    source: str  # the README line, for failure messages


def _words(segment: str) -> list[str]:
    out = []
    for token in segment.split():
        if not WORD.match(token):
            break
        out.append(token)
    return out


def parse(line: str) -> list[Usage]:
    """The commands one README line shows: `grace a b | c [--x]` is `a b` and `a c`."""
    line = line.split(" #", 1)[0].strip()
    line = re.sub(r"^\.venv/bin/", "", line)
    if not line.startswith("grace "):
        return []
    # `|` between commands; inside parentheses it separates options: `(--events F | --from-log)`
    line = re.sub(r"\([^)]*\)", lambda m: m.group(0).replace(" | ", " "), line)
    segments = line[len("grace "):].split(" | ")
    base = _words(segments[0])
    usages = []
    for i, seg in enumerate(segments):
        words = base if i == 0 else [*base[:-1], *_words(seg)[:1]]
        if not words:
            continue
        opts = OPTION.findall(seg)
        if "[same options]" in line:
            opts += SAME_OPTIONS
        usages.append(Usage(tuple(words), tuple(dict.fromkeys(opts)), line))
    return usages


def readme_usages() -> list[Usage]:
    found: dict[tuple[tuple[str, ...], tuple[str, ...]], Usage] = {}
    lines = [ln for b in blocks() for ln in b.text.splitlines()]
    lines += INLINE.findall(README.read_text(encoding="utf-8"))
    for line in lines:
        for u in parse(line):
            found.setdefault((u.path, u.options), u)
    return list(found.values())


def cli_block_usages() -> list[Usage]:
    text = section("CLI")
    block = text[text.index("```\n") + 4: text.index("\n```", text.index("```\n") + 4)]
    return [u for line in block.splitlines() for u in parse(line)]


def grace_group() -> click.Group:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "grace"]
    group = ep.load()
    assert isinstance(group, click.Group)
    return group


def resolve(path: tuple[str, ...]) -> tuple[click.Command | None, tuple[str, ...], list[str]]:
    """The command `path` names, the words that named it, and the words left as its arguments."""
    group = grace_group()
    cmd: click.Command | None = group
    ctx = click.Context(group)
    for i, word in enumerate(path):
        if not isinstance(cmd, click.Group):
            return cmd, path[:i], list(path[i:])
        cmd = cmd.get_command(ctx, word)
        if cmd is None:
            return None, path[: i + 1], []
    return cmd, path, []


def test_the_readme_shows_the_commands_of_its_cli_table() -> None:
    paths = {u.path for u in cli_block_usages()}
    # the table's own lines, so a parser that finds nothing fails here rather than passing
    assert {("up",), ("replay",), ("events", "tail"), ("snapshot", "restore"),
            ("hold", "add"), ("project",), ("deny",)} <= paths, sorted(paths)
    assert len(paths) >= 25


@pytest.mark.parametrize("usage", readme_usages(), ids=lambda u: " ".join(("grace", *u.path, *u.options)))
def test_a_readme_command_exists_with_its_options_and_help(usage: Usage) -> None:
    cmd, named, args = resolve(usage.path)
    assert cmd is not None, f"README shows `{usage.source}` but `grace {' '.join(named)}` does not exist"
    choices = [p.type.choices for p in cmd.params
               if isinstance(p, click.Argument) and isinstance(p.type, click.Choice)]
    if args and choices:  # a word shown as an argument must be one the command takes
        assert args[0] in choices[0], f"README shows `{usage.source}`: {args[0]!r} is not one of {choices[0]}"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
    missing = [o for o in usage.options if o not in known]
    assert not missing, (f"README shows `{usage.source}`, but `grace {' '.join(named)}` has no "
                         f"option {', '.join(missing)} (it has {', '.join(sorted(known))})")
    result = CliRunner().invoke(grace_group(), [*named, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_the_installed_grace_command_answers_help() -> None:
    done = grace_cmd("--help", timeout=60)
    assert done.returncode == 0, done.stderr
    for name in ("up", "replay", "dashboard", "bench", "hold"):
        assert f"  {name} " in done.stdout
