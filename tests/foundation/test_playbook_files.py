"""The playbook names the core reads are the names the processor loads."""

from __future__ import annotations

from pathlib import Path

from grace import playbook_files
from processors import validate


def test_the_shipped_playbooks_declare_the_names_the_processor_loads() -> None:
    names = playbook_files.declared_names([playbook_files.SHIPPED])
    assert len(names) >= 10
    assert names == [p.name for p in validate.load_paths([playbook_files.SHIPPED])]


def test_a_file_that_does_not_parse_declares_no_name(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("playbooks:\n  - name: restart_api\n    on: [kernel_exited]\n")
    (tmp_path / "b.yml").write_text("playbooks: [\n")
    (tmp_path / "c.yaml").write_text("- just a list\n")
    (tmp_path / "notes.txt").write_text("playbooks:\n  - name: not_a_playbook_file\n")
    assert playbook_files.declared_names([tmp_path]) == ["restart_api"]
