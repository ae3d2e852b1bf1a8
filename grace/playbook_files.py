"""Where a config's playbooks are, and the names they declare.

The processor validates and loads these files (processors.validate); operator
control needs only the names, to check a `playbook:NAME` hold target. Both read
the same files through this module.
"""

from __future__ import annotations

from pathlib import Path

from grace import yamlfile
from grace.config import Config
from grace.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "playbooks"


def playbook_paths(cfg: Config) -> list[Path]:
    """The config's `playbooks` paths; the shipped folder when the config names none."""
    if cfg.playbooks:
        return [cfg.path(p) for p in cfg.playbooks]
    return [SHIPPED] if SHIPPED.is_dir() else []


def playbook_files(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus *.yaml / *.yml inside folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def declared_names(paths: list[str | Path]) -> list[str]:
    """The `name` of every playbook in the files of `paths`, in file order.

    A file that cannot be read or parsed declares nothing (`grace playbooks validate`
    reports it); this reads names only and checks nothing else."""
    names: list[str] = []
    for path in playbook_files(paths):
        try:
            data = yamlfile.load(path).data
        except ConfigError:
            continue
        items = data.get("playbooks") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else ():
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                names.append(name)
    return names
