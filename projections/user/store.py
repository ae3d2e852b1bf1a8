"""A user projection's DuckDB file: its tables plus `grace_projection`, its position.

`grace_projection` holds one row: the projection's name and version, the last stream
sequence applied and how many events that was. It is updated in the same transaction
as the rows of the events up to that sequence, so the file is always a projection of
exactly the log's first `last_seq` events: resuming at last_seq + 1 loses nothing and
applies nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from projections.store import DuckFile, ProjectionError, sql_str, utcnow
from projections.user.api import Projection, Rows
from projections.user.load import RESERVED, ProjectionFileError  # RESERVED: grace_projection

log = logging.getLogger(__name__)

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS grace_projection (
    name VARCHAR NOT NULL,          -- the projection's name
    version INTEGER NOT NULL,       -- its version: another one rebuilds the file
    last_seq BIGINT NOT NULL,       -- last GRACE_EVENTS sequence applied
    events BIGINT NOT NULL,         -- events of the types it handles, applied
    updated_at TIMESTAMP NOT NULL   -- wall clock (UTC) of the last commit
)"""


class VersionChanged(ProjectionError):
    """The file holds another version of the projection: it must be rebuilt."""


class UserStore(DuckFile):
    """One user projection file opened read-write by this process."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, proj: Projection) -> None:
        super().__init__(path, con)
        self.proj = proj
        self.columns = {t: [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_catalog = current_database() ORDER BY ordinal_position", [t]).fetchall()]
            for t in _tables(con)}

    @classmethod
    def open(cls, path: Path, proj: Projection, memory_limit: str | None = None) -> UserStore:
        """Open (creating the tables when new); VersionChanged if it holds another version."""
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise ProjectionError(f"cannot open projection file {path}: {exc}; if another "
                                  "process writes it, stop that one or choose another --into"
                                  ) from None
        try:
            con.execute("SET TimeZone = 'UTC'")  # zoned times a projection returns land as UTC
            if memory_limit:
                con.execute(f"SET memory_limit = {sql_str(memory_limit)}")
                con.execute("SET threads = 1")
            con.execute("SET checkpoint_threshold = '64MB'")
            new = RESERVED not in _tables(con)
            if new:
                con.execute("BEGIN TRANSACTION")
                for stmt in proj.tables:
                    con.execute(stmt)
                con.execute(TRACKING_DDL)
                con.execute("INSERT INTO grace_projection VALUES (?, ?, 0, 0, ?)",
                            [proj.name, proj.version, utcnow()])
                con.execute("COMMIT")
            row = con.execute("SELECT name, version FROM grace_projection").fetchone()
            assert row is not None
            if row[0] != proj.name:
                raise ProjectionFileError(
                    f"{path} holds the projection {row[0]!r}, not {proj.name!r}; choose another "
                    "--into (one file per projection)")
            if row[1] != proj.version:
                raise VersionChanged(f"{path} holds version {row[1]} of {proj.name!r}, the file "
                                     f"{proj.source} defines version {proj.version}")
        except duckdb.Error as exc:
            con.close()
            raise ProjectionError(f"projection file {path} is unusable: {exc}; delete it to "
                                  "rebuild it from the log") from None
        except BaseException:
            con.close()
            raise
        return cls(path, con, proj)

    def last_seq(self) -> int:
        row = self.con.execute("SELECT last_seq FROM grace_projection").fetchone()
        return int(row[0]) if row else 0

    def begin(self) -> None:
        if not self.in_transaction:
            self.con.execute("BEGIN TRANSACTION")
            self.in_transaction = True

    def write(self, result: Mapping[str, Rows]) -> None:
        """Append what `apply` returned, table by table (in the open transaction)."""
        for table, rows in result.items():
            cols = self.columns.get(table)
            if cols is None:
                raise ProjectionFileError(
                    f"{self.proj.source}: apply returned rows for {table!r}, which is not among "
                    f"its tables ({', '.join(sorted(self.columns))}); add its CREATE TABLE")
            data = _arrow(rows, cols)
            if data is None or data.num_rows == 0:
                continue
            self.con.register("grace_rows", data)
            try:
                # the name is one of the file's own tables (checked above)
                self.con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM grace_rows')  # noqa: S608
            finally:
                self.con.unregister("grace_rows")

    def run(self, statements: list[str] | tuple[str, ...], batch: pa.Table) -> None:
        """Run SQL statements over `batch` (in the open transaction)."""
        self.con.register("batch", batch)
        try:
            for stmt in statements:
                self.con.execute(stmt)
        finally:
            self.con.unregister("batch")

    def advance(self, last_seq: int, events: int) -> None:
        """Record the position (in the open transaction, with the rows that led to it)."""
        self.con.execute("UPDATE grace_projection SET last_seq = ?, events = events + ?, "
                         "updated_at = ?", [last_seq, events, utcnow()])

    def close(self) -> None:
        """Close; what is not committed is dropped."""
        self.rollback()
        with contextlib.suppress(duckdb.Error):
            self.con.execute("CHECKPOINT")
        self.con.close()


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_catalog = current_database()").fetchall()]


def _arrow(rows: Rows, columns: list[str]) -> pa.Table | None:
    """Rows as Arrow: a Table as is; dicts by key; tuples in the table's column order."""
    if isinstance(rows, pa.Table):
        return rows
    if not rows:
        return None
    first = rows[0]
    if isinstance(first, Mapping):
        return pa.Table.from_pylist(list(rows))
    width = len(first)
    if width > len(columns):
        raise ProjectionFileError(f"a row has {width} values, the table has {len(columns)} "
                                  f"columns ({', '.join(columns)}); return one value a column")
    cols = list(zip(*rows, strict=True)) if width else []
    return pa.Table.from_arrays([pa.array(list(c)) for c in cols], names=columns[:width])
