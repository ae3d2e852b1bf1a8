"""The figures the docs quote are ones `grace bench` reports, under the keys it prints."""

from __future__ import annotations

import re

from bench import benchmarks
from tests.docs.readme import README, section

RELIABILITY = README.parent / "docs" / "reliability.md"


def reported() -> set[str]:
    return {k for b in benchmarks() for k in b.keys}


def readme_speed_keys() -> set[str]:
    rows = [ln for ln in section("Speed").splitlines() if ln.startswith("| `")]
    # the figure names precede the first "(": `replay_s` / `replay_rss_mb` (what they measure)
    return {k for row in rows for k in re.findall(r"`(\w+)`", row.split(" | ")[0].split(" (")[0])}


def test_every_figure_in_the_readme_speed_table_is_a_bench_key() -> None:
    keys = readme_speed_keys()
    assert {"publish_acked_per_s", "monitor_scale_cycle_cpu_ms",
            "durability_sync_always_acked_per_s"} <= keys
    assert keys - reported() == set(), "README Speed table names figures grace bench does not report"


def test_the_durability_figures_are_a_bench_and_reliability_md_says_how_to_run_it() -> None:
    (durability,) = [b for b in benchmarks() if b.name == "durability"]
    text = RELIABILITY.read_text(encoding="utf-8")
    assert "grace bench --only durability" in text
    for key in durability.keys:
        assert f"`{key}`" in text, f"docs/reliability.md does not name {key}"
