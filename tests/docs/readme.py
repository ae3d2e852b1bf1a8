"""The README as data: its fenced code blocks, each under the heading it appears in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    heading: str  # the nearest "## " heading above the block
    lang: str  # the fence's language tag, "" when none
    text: str
    line: int  # README line of the opening fence (1-based), for failure messages


def blocks(path: Path = README) -> list[Block]:
    """Every fenced code block of the README, in order."""
    out: list[Block] = []
    heading = ""
    lang: str | None = None
    start = 0
    body: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if lang is None:
            if line.startswith("## "):
                heading = line[3:].strip()
            elif m:
                lang, start, body = m.group(1), n, []
        elif line.strip() == "```":
            out.append(Block(heading, lang, "\n".join(body) + "\n", start))
            lang = None
        else:
            body.append(line)
    return out


def block(heading: str, lang: str = "") -> Block:
    """The single block with this language tag under the heading `heading`."""
    found = [b for b in blocks() if b.heading == heading and b.lang == lang]
    assert len(found) == 1, f"README: expected one ```{lang} block under '## {heading}', found {len(found)}"
    return found[0]


def section(heading: str, path: Path = README) -> str:
    """The README text under `## heading`, up to the next `## ` heading."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end >= 0 else len(text)]
