"""pre_boot_code_diff: a changed tree, a syntax error in a changed file, recovery."""

from __future__ import annotations

from pathlib import Path

from grace import events
from producers.base import Env
from producers.pre_boot_code_diff import PreBootCodeDiff


async def test_syntax_error_in_changed_file_names_file_line_and_message(env: Env) -> None:
    trig = PreBootCodeDiff(env)
    first = await trig.check()
    assert first.findings == []  # the first clean tree becomes the last good one
    src = Path(env.cfg.config_dir) / "src"
    (src / "new.py").write_text("x = 1\n\ndef broken(:\n    pass\n")
    res = await trig.check()
    syntax = [f for f in res.findings if isinstance(f, events.SyntaxErrorFound)]
    changed = [f for f in res.findings if isinstance(f, events.CodeChanged)]
    assert len(syntax) == 1 and syntax[0].path == "new.py" and syntax[0].line == 3
    assert syntax[0].message
    assert changed and changed[0].changed == ["new.py"] and changed[0].previous_hash
    # still broken: both stay; fixed: the fixed tree becomes the last good one
    assert len((await trig.check()).findings) == 2
    (src / "new.py").write_text("x = 1\n")
    res = await trig.check()
    assert [type(f) for f in res.findings] == [events.CodeChanged]
    assert (await trig.check()).findings == []


async def test_last_good_tree_survives_a_restart(env: Env) -> None:
    await PreBootCodeDiff(env).check()
    (Path(env.cfg.config_dir) / "src" / "app.py").write_text("def main() -> int:\n    return 1\n")
    [f] = (await PreBootCodeDiff(env).check()).findings  # a new instance: state from disk
    assert isinstance(f, events.CodeChanged) and f.changed == ["app.py"]
