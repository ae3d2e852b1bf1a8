"""One exception root: every exception class Grace defines derives from GraceError, and no
module raises a builtin exception type except where the allow-list below says why."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

from grace.errors import GraceError

PACKAGES = ("grace", "producers", "processors", "actuators", "projections", "control", "bench")
ROOT = Path(__file__).resolve().parents[2]

BUILTIN_EXCEPTIONS = frozenset(
    name for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException))

# (file, builtin exception raised there) -> why it is not a GraceError
ALLOWED: dict[tuple[str, str], str] = {
    ("grace/config.py", "NotImplementedError"):
        "msgspec's dec_hook protocol: NotImplementedError means 'a type this hook does not decode'",
    ("processors/spec.py", "NotImplementedError"):
        "msgspec's dec_hook protocol, as in grace/config.py",
    ("processors/gates/__init__.py", "NotImplementedError"):
        "the abstract method of the gate base class; every gate overrides it",
    ("processors/matcher_base.py", "NotImplementedError"):
        "abstract methods of the matcher's base; the matcher overrides them",
    ("grace/transport/base.py", "AssertionError"):
        "marks a line the consumer-create retry loop never reaches (it returns or raises BusError)",
    ("projections/reader.py", "AssertionError"):
        "a callback the range reader is given but never calls (it writes frames itself)",
    ("grace/transport/fastclient.py", "ValueError"):
        "caught on the next line and raised as nats-py's ProtocolError, which its reader expects",
    ("actuators/cli.py", "SystemExit"):
        "`grace snapshot take` ends with the named exit code FINDINGS, and `grace act --boot-phase`"
        " with its phase's code: exits, not errors",
    ("producers/cli.py", "SystemExit"):
        "`grace produce --boot-phase` ends with its phase's exit code: an exit, not an error",
    ("grace/heartbeat.py", "ConnectionError"):
        "the kernel heartbeat thread's retry loop catches it (an OSError); it never leaves the module",
}


def _modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        # a __main__ module runs its program when imported; it defines no errors
        names.extend(m.name for m in pkgutil.walk_packages(pkg.__path__, f"{package}.")
                     if not m.name.endswith(".__main__"))
    return names


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _raised_name(node: ast.Raise) -> str | None:
    """The name of what `raise X` / `raise X(...)` raises, when it is a plain name."""
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def test_every_exception_class_grace_defines_derives_from_grace_error() -> None:
    outside = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == name and not issubclass(value, GraceError)):
                bases = ", ".join(b.__name__ for b in value.__bases__)
                outside.append(f"{name}.{attr}({bases})")
    assert not outside, ("exception classes outside grace.errors.GraceError (derive them from "
                         f"GraceError or one of its subclasses): {outside}")


def test_the_walk_sees_every_package_and_the_error_classes_in_stages() -> None:
    names = _modules()
    assert {"producers.probes", "processors.templates", "actuators.boot", "bench.replay"} <= set(names)
    assert len(_sources()) >= len(names)


def test_no_builtin_exception_is_raised_outside_the_allow_list() -> None:
    found: set[tuple[str, str]] = set()
    unexplained = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
            if isinstance(node, ast.Raise) and node.exc is not None:
                name = _raised_name(node)
                if name in BUILTIN_EXCEPTIONS:
                    found.add((rel, name))
                    if (rel, name) not in ALLOWED:
                        unexplained.append(f"{rel}:{node.lineno}: raise {name}")
    assert not unexplained, ("builtin exceptions raised; raise a GraceError subclass that says "
                             f"what, where and what to do (or allow-list it with a reason): {unexplained}")
    stale = sorted(set(ALLOWED) - found)
    assert not stale, f"allow-list entries that no longer match a raise; remove them: {stale}"
