"""A small protected system in a temp folder: a model, a config file, a manifest, a grace.yaml."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import yaml

from grace import config, integrity, manifest


def write_system(root: Path, extra: dict[str, Any] | None = None, baseline: bool = True
                 ) -> config.Config:
    """Create models/m.pkl, config/app.yaml, src/app.py and grace.yaml; accept them as baseline."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    (root / "src").mkdir(exist_ok=True)
    (root / "models" / "m.pkl").write_bytes(pickle.dumps({"weights": list(range(100))}))
    (root / "config" / "app.yaml").write_text("threads: 4\nmode: fast\n")
    (root / "src" / "app.py").write_text("def main() -> int:\n    return 0\n")
    doc: dict[str, Any] = {
        "host": "t-" + root.name[-12:].replace(".", "-").replace("_", "-"),
        "data_dir": "data",
        "monitor": {"interval": "1s", "timeout": "3s"},
        "protect": {"models": ["models/*.pkl"], "configs": ["config/*.yaml"]},
        "code": {"root": "src"},
    }
    doc.update(extra or {})
    (root / "grace.yaml").write_text(yaml.safe_dump(doc))
    cfg = config.load(root / "grace.yaml")
    if baseline:
        accept(cfg, ["models/m.pkl", "config/app.yaml"])
    return cfg


def accept(cfg: config.Config, rels: list[str]) -> None:
    """Record the files' current hashes as the accepted baseline (as `grace snapshot accept` does)."""
    m = manifest.load(cfg)
    for rel in rels:
        p = Path(cfg.config_dir) / rel
        kind = "model" if rel.startswith("models/") else "config"
        m.files[rel] = manifest.Entry(path=rel, kind=kind, sha256=integrity.sha256_file(p),
                                      size=p.stat().st_size,
                                      latest=manifest.latest_name(m, rel, kind))
    manifest.save(cfg, m)
