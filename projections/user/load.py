"""Load a projection file: a Python file (or module) defining PROJECTION, or a SQL file.

A SQL projection is one file: a header of `-- key: value` lines (name, version,
handles), then `-- tables` and the DDL, then `-- apply` and the statements run for
each batch over the table `batch` (the `events` columns: seq, time, type, category,
host, subject, source, id, data):

    -- name: restarts_per_day
    -- version: 1
    -- handles: kernel_restarted
    -- tables
    CREATE TABLE restarts_per_day (day DATE, host VARCHAR, n BIGINT);
    -- apply
    INSERT INTO restarts_per_day SELECT CAST(time AS DATE), host, count(*) FROM batch GROUP BY ALL;

Every check runs at load (the DDL and statements against an empty in-memory
database), so a bad file fails before anything reads the log.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import duckdb

from grace import events
from grace.errors import GraceError
from projections.user.api import BATCH_SCHEMA, Projection

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^--\s*(name|version|handles)\s*:\s*(.*?)\s*$")
RESERVED = "grace_projection"  # the position table's name in every projection file


class ProjectionFileError(GraceError):
    """A projection file cannot be used; the message names the file and what to fix."""


def load(spec: str) -> Projection:
    """The projection defined at `spec` (a .py or .sql path, or a dotted module name)."""
    path = Path(spec)
    if path.suffix == ".sql":
        proj = _load_sql(path)
    elif path.suffix == ".py" or path.exists():
        proj = _load_python_file(path)
    else:
        proj = _load_module(spec)
    check(proj)
    return proj


def _load_python_file(path: Path) -> Projection:
    if not path.is_file():
        raise ProjectionFileError(f"projection file {path} does not exist; pass the path of a "
                                  ".py or .sql projection file")
    mod_name = f"grace_user_projection_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ProjectionFileError(f"{path}: not a Python file; name it *.py (or *.sql for SQL)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ProjectionFileError(f"{path}: importing it failed: {exc!r}; fix the file "
                                  "(run `python {path}` to see the traceback)") from exc
    return _from_module(module, str(path))


def _load_module(name: str) -> Projection:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ProjectionFileError(f"projection {name!r}: no such file, and importing it as a "
                                  f"module failed ({exc}); pass a .py/.sql path or a module "
                                  "name on the Python path") from exc
    return _from_module(module, name)


def _from_module(module: Any, where: str) -> Projection:
    proj = getattr(module, "PROJECTION", None)
    if not isinstance(proj, Projection):
        raise ProjectionFileError(
            f"{where}: defines no PROJECTION (found {type(proj).__name__}); add "
            "`PROJECTION = Projection(name=..., version=..., handles=(...), tables=[...], "
            "apply=...)` from projections.user.api")
    proj.source = where
    return proj


def _load_sql(path: Path) -> Projection:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectionFileError(f"cannot read projection file {path}: {exc}") from None
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {"tables": [], "apply": []}
    current: list[str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        bare = line.strip().lower()
        if bare in ("-- tables", "-- apply"):
            current = sections[bare[3:]]
            continue
        m = _HEADER.match(line.strip())
        if m and current is None:
            header[m.group(1)] = m.group(2)
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.strip().startswith("--"):
            raise ProjectionFileError(f"{path}:{n}: SQL before the `-- tables` line; put the "
                                      "DDL after `-- tables` and the per-batch statements after "
                                      "`-- apply`")
    for key in ("name", "version", "handles"):
        if not header.get(key):
            raise ProjectionFileError(f"{path}: the header has no `-- {key}: ...` line; add it "
                                      "above `-- tables`")
    try:
        version = int(header["version"])
    except ValueError:
        raise ProjectionFileError(f"{path}: `-- version: {header['version']}` is not an integer"
                                  ) from None
    if not sections["apply"]:
        raise ProjectionFileError(f"{path}: no `-- apply` section; add it with the statements "
                                  "that read the table `batch`")
    return Projection(name=header["name"], version=version,
                      handles=tuple(t.strip() for t in header["handles"].split(",") if t.strip()),
                      tables=_statements(path, "\n".join(sections["tables"])),
                      statements=_statements(path, "\n".join(sections["apply"])),
                      source=str(path))


def _statements(path: Path, sql: str) -> list[str]:
    try:
        return [s.query.strip().rstrip(";") for s in duckdb.extract_statements(sql)]
    except duckdb.Error as exc:
        raise ProjectionFileError(f"{path}: SQL does not parse: {exc}") from None


def check(proj: Projection) -> None:
    """Raise ProjectionFileError unless the projection is complete and its SQL runs."""
    where = proj.source or proj.name
    if not isinstance(proj.name, str) or not _NAME.match(proj.name):
        raise ProjectionFileError(f"{where}: name {proj.name!r} is missing or not an identifier; "
                                  "set name= to letters, digits and _")
    if not isinstance(proj.version, int) or proj.version < 1:
        raise ProjectionFileError(f"{where}: version {proj.version!r} must be an integer >= 1 "
                                  "(raise it whenever the tables or the logic change)")
    if isinstance(proj.handles, str) or not proj.handles:
        raise ProjectionFileError(f"{where}: handles= must list the event types it reads, e.g. "
                                  "handles=('command_issued',); `grace schema` lists them all")
    unknown = sorted(set(proj.handles) - set(events.PAYLOAD_CLASSES))
    if unknown:
        raise ProjectionFileError(f"{where}: unknown event type(s) {', '.join(unknown)} in "
                                  "handles; `grace schema` lists the types of this version")
    if proj.apply is None and not proj.statements:
        raise ProjectionFileError(f"{where}: neither apply= nor statements: nothing would be "
                                  "written; give a function or SQL statements over `batch`")
    if not proj.tables:
        raise ProjectionFileError(f"{where}: tables= is empty; give the CREATE TABLE statements")
    con = duckdb.connect(":memory:")
    try:
        for stmt in proj.tables:
            _run(con, where, "table DDL", stmt)
        if RESERVED in _table_names(con):
            raise ProjectionFileError(f"{where}: the table name {RESERVED} is Grace's own (the "
                                      "projection's position); rename your table")
        con.register("batch", BATCH_SCHEMA.empty_table())
        for stmt in proj.statements:
            _run(con, where, "statement over `batch`", stmt)
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, where: str, what: str, stmt: str) -> None:
    try:
        con.execute(stmt)
    except duckdb.Error as exc:
        first = stmt.strip().splitlines()[0] if stmt.strip() else stmt
        raise ProjectionFileError(f"{where}: {what} failed: {exc}\n  in: {first}\nfix the "
                                  "statement (it is checked against an empty database)") from None


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables"
                                      ).fetchall()}
