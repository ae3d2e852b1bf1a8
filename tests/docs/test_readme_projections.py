"""The README's user projection commands build the shipped examples, and its questions
answer on what they built (a real nats-server, the real CLI)."""

from __future__ import annotations

import shlex
from pathlib import Path

import duckdb

from grace.embedded import EmbeddedServer
from tests.docs.readme import README, block, blocks
from tests.projections.live import publish_sync
from tests.projections.user_support import incidents
from tests.support import grace_cmd

HEADING = "Querying your own projections"
ROOT = README.parent


def test_the_readme_builds_every_example_projection_and_its_questions_answer(
        fresh_server: EmbeddedServer, tmp_path: Path) -> None:
    publish_sync(fresh_server.url, incidents(30))
    (commands,) = [b for b in blocks() if b.heading == HEADING and "grace replay" in b.text]
    built = []
    for line in commands.text.splitlines():
        if not line.startswith("grace replay"):
            continue
        args = shlex.split(line)[1:]
        into = args.index("--into") + 1
        args[into] = str(tmp_path / args[into])
        args[args.index("--projection") + 1] = str(ROOT / args[args.index("--projection") + 1])
        r = grace_cmd(*args, "--nats", fresh_server.url, timeout=120)
        assert r.returncode == 0, f"{line}: {r.stderr}"
        built.append(Path(args[into]))
    shipped = sorted(p.name for p in (ROOT / "examples" / "projections").iterdir())
    assert len(built) == len(shipped) == 3
    questions = [q.strip() for q in block(HEADING, "sql").text.split(";") if q.strip()]
    assert len(questions) == 3
    for q in questions:
        answers = []
        for path in built:
            con = duckdb.connect(str(path), read_only=True)
            try:
                answers.append(con.execute(q).fetchall())
            except duckdb.CatalogException:
                continue  # asked of another projection's file
            finally:
                con.close()
        assert len(answers) == 1 and answers[0], f"no answer, or more than one file, for: {q}"
