"""protect.protected_files resolves folders once and links one by one: what it lists is still
every real file under the config folder that a glob matches, and nothing outside it."""

from __future__ import annotations

from pathlib import Path

import msgspec

from grace import config, protect


def _cfg(root: Path) -> config.Config:
    cfg = msgspec.convert({"host": "h", "protect": {"models": ["models/*.pkl", "linked/*.pkl"],
                                                    "configs": ["config/*.yaml"]}}, config.Config)
    return msgspec.structs.replace(cfg, config_dir=str(root.resolve()))


def test_links_are_followed_inside_the_config_folder_and_refused_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "sys", tmp_path / "elsewhere"
    for d in (root / "models", root / "config", outside):
        d.mkdir(parents=True)
    (root / "models" / "m.pkl").write_bytes(b"x")
    (root / "config" / "app.yaml").write_text("a: 1\n")
    (outside / "secret.pkl").write_bytes(b"s")
    (root / "models" / "alias.pkl").symlink_to(root / "models" / "m.pkl")  # same file: once
    (root / "models" / "evil.pkl").symlink_to(outside / "secret.pkl")  # a file outside
    (root / "linked").symlink_to(outside)  # a folder outside: linked/secret.pkl
    (root / "config" / "gone.yaml").symlink_to(root / "config" / "missing.yaml")  # dangling
    files = protect.protected_files(_cfg(root))
    assert files == [((root / "config" / "app.yaml").resolve(), "config"),
                     ((root / "models" / "m.pkl").resolve(), "model")]
