"""Reading a lock file, installed distributions and OSV advisories (pure functions).

Versions compare with `packaging` (PEP 440); a version it cannot parse is
compared as text (so only equality is meaningful for it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from producers.base import CheckError

_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(v: str) -> Version | str:
    try:
        return Version(v)
    except InvalidVersion:
        return v


def older(a: str, b: str) -> bool:
    """True when version `a` is strictly older than `b` (False when incomparable)."""
    va, vb = parse_version(a), parse_version(b)
    if isinstance(va, Version) and isinstance(vb, Version):
        return va < vb
    return False


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` lines (requirements style) -> {normalized name: version}."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckError(f"lock file {path} is unreadable: {exc.strerror or exc}; fix "
                         "dependencies.lock in the config") from None
    out: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "--")):
            continue
        m = _LOCK_LINE.match(line)
        if not m:
            raise CheckError(f"{path}:{no}: cannot read {raw.strip()!r}: a lock line must be "
                             "name==version (e.g. requests==2.32.3)")
        out[normalize(m.group(1))] = m.group(3)
    return out


def installed(site_packages: list[Path]) -> dict[str, str]:
    """{normalized name: version} from dist-info METADATA under the folders, else this interpreter."""
    out: dict[str, str] = {}
    if not site_packages:
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                out.setdefault(normalize(name), dist.version)
        return out
    parser = HeaderParser()
    for folder in site_packages:
        if not folder.is_dir():
            raise CheckError(f"site-packages folder {folder} does not exist; fix "
                             "dependencies.site_packages in the config")
        for meta in sorted(folder.glob("*.dist-info/METADATA")):
            try:
                headers = parser.parsestr(meta.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if headers["Name"] and headers["Version"]:
                out.setdefault(normalize(headers["Name"]), headers["Version"].strip())
    return out


@dataclass
class Advisory:
    id: str
    package: str  # normalized
    aliases: list[str] = field(default_factory=list)
    summary: str = ""
    versions: set[str] = field(default_factory=set)
    ranges: list[list[tuple[str, str]]] = field(default_factory=list)  # events in order


def read_advisories(path: Path) -> list[Advisory]:
    """OSV records (a JSON list, one record, or {"vulns": [...]}) -> one Advisory per package."""
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise CheckError(f"advisory file {path} is unreadable: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CheckError(f"advisory file {path} is not valid JSON: {exc}; it must be OSV records "
                         "(a list, or {\"vulns\": [...]})") from None
    records: Any = doc.get("vulns", [doc] if "id" in doc else []) if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise CheckError(f"advisory file {path}: expected a list of OSV records")
    out: list[Advisory] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise CheckError(f"advisory file {path}: record {i} has no string 'id'; not OSV")
        for aff in rec.get("affected") or []:
            name = ((aff or {}).get("package") or {}).get("name")
            if not isinstance(name, str):
                raise CheckError(f"advisory file {path}: {rec['id']} has an affected entry "
                                 "without package.name")
            adv = Advisory(id=rec["id"], package=normalize(name),
                           aliases=[a for a in rec.get("aliases") or [] if isinstance(a, str)],
                           summary=str(rec.get("summary") or rec.get("details") or "")[:300],
                           versions={str(v) for v in aff.get("versions") or []})
            for rng in aff.get("ranges") or []:
                evs = [(k, str(v)) for e in rng.get("events") or [] for k, v in e.items()]
                adv.ranges.append(evs)
            out.append(adv)
    return out


def affected(adv: Advisory, version: str) -> tuple[bool, str | None]:
    """(is `version` affected, the fixed version that ends its range if known)."""
    if version in adv.versions:
        return True, _first_fixed_after(adv, version)
    v = parse_version(version)
    if not isinstance(v, Version):
        return False, None
    for events_ in adv.ranges:
        start: Version | None = None
        inside = False
        for kind, raw in events_:
            ev = Version("0") if raw == "0" else parse_version(raw)
            if not isinstance(ev, Version):
                continue
            if kind == "introduced":
                start, inside = ev, v >= ev
            elif kind == "fixed" and start is not None:
                if inside and v < ev:
                    return True, raw
                inside = False
            elif kind == "last_affected" and start is not None:
                if inside and v <= ev:
                    return True, None
                inside = False
        if inside:
            return True, None
    return False, None


def _first_fixed_after(adv: Advisory, version: str) -> str | None:
    v = parse_version(version)
    fixes = [parse_version(raw) for evs in adv.ranges for k, raw in evs if k == "fixed"]
    later = sorted(f for f in fixes if isinstance(f, Version) and isinstance(v, Version) and f > v)
    return str(later[0]) if later else None
