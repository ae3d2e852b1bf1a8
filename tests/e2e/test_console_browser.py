"""The web console in a real browser (Debian's Chromium, headless, driven by Playwright) on a
running `grace up` with the example: an incident appears live with its chain, an approval is
refused without the token and approved with it, and the command it led to runs.

Skipped only when /usr/bin/chromium is absent (.ci/run installs it with apt-get)."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grace.app import demo
from tests.e2e.conftest import Running, _configure, booted, register

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks" / "advanced_self_healing.yaml"
WAIT_MS = 60_000  # bounded waits for Grace to act (1 s cycles); the speed is `grace bench`'s

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y "
                              "chromium; .ci/run does) to run the browser tests"),
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@pytest.fixture(scope="module")
def console_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example with 1 s cycles; config drift needs a person's yes (mode: approve)."""
    root = tmp_path_factory.mktemp("console") / "system"
    demo.init_copy(root)
    register(root)
    cfg = _configure(root)
    text = PLAYBOOKS.read_text().replace("  - name: config_drift_detected\n",
                                         "  - name: config_drift_detected\n    mode: approve\n")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "operator.yaml").write_text(text)
    cfg.write_text(re.sub(r"playbooks: \[[^\]]*\]", "playbooks: [playbooks]", cfg.read_text()))
    with booted(root, cfg) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def test_an_incident_appears_live_with_its_chain(console_up: Running, browser: Any,
                                                 tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(console_up.http + "/")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    page.evaluate("window.notReloaded = true")
    page.click("nav button[data-tab=incidents]")
    rows = page.locator('tr.incident[data-playbook="model_corruption_detected"]')
    expect(rows).to_have_count(0)
    console_up.fault("model-corruption")
    acted = page.locator('tr.incident[data-playbook="model_corruption_detected"][data-outcome="acted"]')
    expect(acted.first).to_contain_text("succeeded", timeout=WAIT_MS)
    assert page.evaluate("window.notReloaded") is True  # it came over /api/stream
    acted.first.click()
    chain = page.locator("#chain tr.chainevent")
    expect(page.locator('#chain tr.chainevent[data-type="command_succeeded"]')).to_have_count(
        1, timeout=WAIT_MS)
    types = chain.evaluate_all("rows => rows.map(r => r.dataset.type)")
    seqs = chain.evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert types[0] == "model_corruption" and "restore_model_weights" not in types[:1]
    assert "command_issued" in types and types[-1] in ("command_succeeded", "verify_passed",
                                                        "snapshot_restored")
    assert seqs == sorted(seqs) and all(s > 0 for s in seqs)
    shot = Path(os.environ.get("GRACE_CONSOLE_SCREENSHOT", str(tmp_path / "console.png")))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_an_approval_is_refused_without_the_token_and_acts_with_it(
        console_up: Running, browser: Any) -> None:
    from playwright.sync_api import expect

    config = sorted(p for p in (console_up.root / "config").iterdir()
                    if p.suffix in (".yaml", ".json"))[0]
    original = config.read_bytes()
    page = browser.new_page()
    page.goto(console_up.http + "/")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    console_up.fault("config-drift")
    approve = page.locator("button[data-approve]").first
    expect(approve).to_be_visible(timeout=WAIT_MS)
    assert config.read_bytes() != original  # drifted, and Grace waits for a person
    command_id = approve.get_attribute("data-approve")

    # without the token: read-only; the button is disabled and says why, the API refuses
    expect(approve).to_be_disabled()
    assert "operator token" in (approve.get_attribute("title") or "")
    expect(page.locator("#authnote")).to_contain_text("read-only")
    status = page.evaluate(f"graceAct('/api/approvals/{command_id}/approve', {{}})")
    assert status == 401
    expect(page.locator("#message")).to_contain_text("refused (401)")
    page.fill("#token", "not-the-token")
    page.click("#tokenform button")
    expect(page.locator("#authnote")).to_contain_text("not the operator token")
    expect(approve).to_be_disabled()
    assert config.read_bytes() != original

    # with the token grace up created: approve from the page; the command is issued and runs
    token = (console_up.data_dir / "auth" / "operator.token").read_text().strip()
    page.fill("#by", "erin")
    page.fill("#token", token)
    page.click("#tokenform button")
    expect(page.locator("#authnote")).to_contain_text("accepted")
    expect(approve).to_be_enabled()
    approve.click()
    expect(page.locator("#message")).to_contain_text("recorded approval_granted")
    page.click("nav button[data-tab=incidents]")
    row = page.locator(f'tr.incident[data-command-id="{command_id}"]')
    expect(row).to_have_attribute("data-outcome", "acted", timeout=WAIT_MS)
    expect(row).to_contain_text("succeeded", timeout=WAIT_MS)
    row.click()
    issued = page.locator('#chain tr.chainevent[data-type="command_issued"]')
    expect(issued).to_have_count(1, timeout=WAIT_MS)
    assert '"approved_by": "erin"' in issued.inner_text().replace("\n", "")
    expect(page.locator('#chain tr.chainevent[data-type="approval_granted"]')).to_have_count(1)
    assert config.read_bytes() == original  # restored by the approved command
    # approving again is refused: the log says it was approved
    status = page.evaluate(f"graceAct('/api/approvals/{command_id}/approve', {{}})")
    assert status == 409
    expect(page.locator("#message")).to_contain_text("already approved")
    page.close()



def test_the_overview_shows_each_running_instances_rss(console_up: Running, browser: Any) -> None:
    """RSS per instance comes from the log: resource_pressure's run records `rss_mb.<kernel>`."""
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(console_up.http + "/")
    api_row = page.locator("#kernels tr", has=page.locator("td", has_text=re.compile(r"^api$")))
    expect(api_row.first).to_contain_text(re.compile(r"\d+(\.\d+)? MB"), timeout=WAIT_MS)
    with urllib.request.urlopen(f"{console_up.http}/api/overview", timeout=5) as resp:
        kernels = json.loads(resp.read())["kernels"]
    measured = [k for k in kernels if k["rss_mb"] is not None]
    assert measured and all(k["rss_mb"] > 1 and k["rss_at"] for k in measured)
    page.close()
