"""The HTML report opens in a real browser and shows the gate table first."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from loragate.gating.report import render_html
from loragate.gating.verdict import CanaryOutcome, GateRule, SampleOutcome, compute_verdict


def document() -> dict:
    rules = {"pdca_schema": GateRule("ship", 0.95),
             "refusal": GateRule("ship", 0.98, "f1")}
    samples = [SampleOutcome(f"t::pdca[{i}]", "pdca_schema", i != 3, f"reason {i}")
               for i in range(20)]
    samples += [SampleOutcome(f"t::ref[{i}]", "refusal", True, "", expected=label,
                              predicted=label)
                for i, label in enumerate(["refuse", "comply"] * 5)]
    canaries = [CanaryOutcome("c01", True, True), CanaryOutcome("c02", False, True, "missing")]
    verdict = compute_verdict(samples, rules, canaries=canaries)
    return {"schema": "loragate.verdict/1", "loragate_version": "0", "created_at": "now",
            "model": {"spec": "gguf:m.gguf", "digest": "abc"},
            "baseline": {"spec": None, "digest": None}, "generation": {"temperature": 0.7},
            "thresholds": {}, "data_hash": "", "inputs_hash": "h", **verdict,
            "metrics": {"latency": {"ttft_p50_ms": 12.0}}, "timings": {},
            "samples": [s.__dict__ for s in samples]}


def test_gate_table_comes_first_and_samples_carry_reasons():
    html = render_html(document())
    body = html[html.index("<body>"):]
    assert body.index('id="loragate-gates"') < body.index("<h2>Model</h2>")
    assert "BLOCKED" in html and "reason 3" in html and "c02" in html
    assert "&lt;" not in render_html(document()).split("<body>")[0]  # head is not escaped junk


def test_reasons_are_escaped():
    doc = document()
    doc["samples"][0]["reason"] = "<script>alert(1)</script>"
    assert "<script>alert(1)</script>" not in render_html(doc)


def test_headless_chromium_screenshot_shows_the_gate_table(tmp_path):
    if shutil.which("chromium") is None:
        pytest.fail("chromium is missing: scripts/install-services.sh installs it", False)
    page = tmp_path / "report.html"
    page.write_text(render_html(document()), encoding="utf-8")
    shot = tmp_path / "report.png"
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'class="gate-table"' in dom.stdout
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, f"screenshot of {len(data)} bytes looks empty"
