"""Playbook validation: golden files with their exact `file:line: message` errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace.errors import ValidationErrors
from processors import validate
from tests.conftest import REPO
from tests.processors.support import write
from tests.support import grace_cmd

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_golden_playbook_errors(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rel = (GOLDEN / f"{name}.yaml").relative_to(REPO)
    playbooks, errors = validate.check_paths([rel])
    expected = (GOLDEN / f"{name}.errors").read_text().splitlines()
    assert [str(e) for e in errors] == expected
    assert playbooks == []  # a file with any error loads nothing


def test_cli_exits_1_with_file_line_errors() -> None:
    rel = (GOLDEN / "unknown_action.yaml").relative_to(REPO)
    result = grace_cmd("playbooks", "validate", str(rel), cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"{rel}:5: unknown action 'restart_kernal'; did you mean 'restart_kernel'?")


def test_a_bad_file_loads_nothing_but_good_files_still_validate(tmp_path: Path) -> None:
    write(tmp_path, "a_good.yaml", """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    do: [{restart_kernel: {kernel: "{kernel}"}}]
""")
    write(tmp_path, "b_bad.yaml", (GOLDEN / "unknown_event.yaml").read_text())
    playbooks, errors = validate.check_paths([tmp_path])
    assert [p.name for p in playbooks] == ["restart"] and len(errors) == 1
    with pytest.raises(ValidationErrors):
        validate.load_paths([tmp_path])


def test_names_must_be_unique_across_files(tmp_path: Path) -> None:
    text = (GOLDEN / "unknown_key.yaml").read_text().replace("    cooldwon: 1m\n", "")
    write(tmp_path, "one.yaml", text)
    write(tmp_path, "two.yaml", text)
    _, errors = validate.check_paths([tmp_path])
    assert len(errors) == 1 and "already used at" in str(errors[0])
    assert str(errors[0]).startswith(f"{tmp_path / 'two.yaml'}:2:")


def test_process_refuses_to_start_on_invalid_playbooks(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", (GOLDEN / "unknown_field.yaml").read_text())
    cfg = write(tmp_path, "grace.yaml", f"host: t1\ndata_dir: {tmp_path / 'data'}\n"
                                        f"playbooks: [{tmp_path / 'bad.yaml'}]\n")
    result = grace_cmd("process", "-c", str(cfg), "--nats", "nats://127.0.0.1:1")
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:5: event type cpu_saturation has no field `precent`" \
        in result.stderr
