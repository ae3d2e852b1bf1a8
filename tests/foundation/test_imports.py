"""The import rules, read from the source: the core imports no stage, no stage imports another.

The core is every module of grace/ outside grace/app/ (the composition root, the one place that
wires stages together). Every import counts, including those inside functions: a lazy import is
still a dependency, and the usual way a cycle hides.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGES = ("producers", "processors", "actuators", "projections", "control")
APP = "grace.app"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported (a known module when the name resolves to one)
    line: int

    def __str__(self) -> str:
        path = module_path(self.module).relative_to(REPO)
        return f"{self.module} ({path}:{self.line}) imports {self.target}"


def module_path(module: str) -> Path:
    base = REPO.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def modules_of(package: str) -> list[str]:
    root = REPO / package
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found.append(".".join(parts))
    return found


def core_modules() -> list[str]:
    return [m for m in modules_of("grace") if m != APP and not m.startswith(APP + ".")]


ALL_MODULES = frozenset(m for p in ("grace", *STAGES, "bench") for m in modules_of(p))


def _resolve(name: str) -> str:
    """The longest known module `name` starts with; `name` itself for third-party imports."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in ALL_MODULES:
            return candidate
    return name


def imports_of(module: str) -> Iterator[Import]:
    path = module_path(module)
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, _resolve(alias.name), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield Import(module, _resolve(f"{base}.{alias.name}"), node.lineno)


def top(name: str) -> str:
    return name.split(".")[0]


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_core_imports_no_stage_no_bench_and_not_the_composition_root() -> None:
    bad = [str(i) for m in core_modules() for i in imports_of(m)
           if top(i.target) in (*STAGES, "bench") or is_within(i.target, APP)]
    assert not bad, ("the core (grace/ outside grace/app/) must not depend on a stage, bench or "
                     "grace.app; move the code into grace/app/ or the stage:\n  " + "\n  ".join(bad))


def stage_crossings() -> dict[tuple[str, str], Import]:
    bad = {}
    for stage in STAGES:
        for m in modules_of(stage):
            for i in imports_of(m):
                other = top(i.target)
                if (other in STAGES and other != stage) or other == "bench" or is_within(i.target, APP):
                    bad[(i.module, i.target)] = i
    return bad


def test_no_stage_imports_another_stage_bench_or_the_composition_root() -> None:
    bad = stage_crossings()
    assert not bad, ("stages talk only through NATS and share only the core (grace/):\n  "
                     + "\n  ".join(str(bad[k]) for k in sorted(bad)))


def core_graph() -> dict[str, set[str]]:
    core = set(core_modules())
    return {m: {i.target for i in imports_of(m) if i.target in core and i.target != m}
            for m in core}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_core_has_no_import_cycle() -> None:
    graph = core_graph()
    # a package's own submodules are imported through it (grace.events re-exports its parts);
    # a submodule importing its parent package back is the cycle this test is about
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among core modules: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    # grace.app.up imports the playbook validator inside a function: the walk must see it
    targets = {i.target for i in imports_of("grace.app.up")}
    assert "processors.validate" in targets
    assert len(core_modules()) > 20 and all(not is_within(m, APP) for m in core_modules())
