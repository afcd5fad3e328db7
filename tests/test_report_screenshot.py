"""The HTML report in a real browser: headless Chromium shows a failing sample's answer.

Chromium renders the page (its script runs) and dumps the DOM, which must hold the answer
inside a sample block that is open and not hidden; the filter, driven by the address's
#fragment, hides it when asked for passing samples only; the screenshot is a real PNG of the
requested size with something drawn on it.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from loragate.gating.outcomes import SampleOutcome
from loragate.gating.report import render_html
from loragate.gating.verdict import GateRule
from tests.verdicts import verdict_json

ANSWER = "QUOKKA-7731: the adapter forgot the init() call"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/install-services.sh installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def document() -> dict:
    rules = {"empty_constructor": GateRule("ship", 0.95), "tron_format": GateRule("quality", 0.9)}
    samples = [SampleOutcome(f"t::ec[{i}]", "empty_constructor", i != 4,
                             "ok" if i != 4 else "class Foo: constructor takes arguments",
                             sample_id=f"empty_constructor-{i:03d}",
                             answer=ANSWER if i == 4 else f"class Ok{i} {{ constructor() {{}} }}",
                             reasons=("class Foo: constructor takes arguments",) if i == 4 else (),
                             finish_reason="stop", prompt_tokens=40, completion_tokens=20,
                             ttft_s=0.1, total_s=0.9, seed=42)
               for i in range(12)]
    samples += [SampleOutcome(f"t::tron[{i}]", "tron_format", True, "ok",
                              sample_id=f"tron_format-{i:03d}", answer=f"tron answer {i}")
                for i in range(5)]
    verdict = verdict_json(samples, rules, confidence="lower")
    return {"schema": "loragate.verdict/1", "loragate_version": "0", "created_at": "now",
            "model": {"spec": "gguf:m.gguf", "digest": "abc"},
            "baseline": {"spec": None, "digest": None}, "generation": {"temperature": 0.7},
            "thresholds": {}, "data_hash": "", "inputs_hash": "h", **verdict,
            "metrics": {}, "timings": {}, "samples": [s.__dict__ for s in samples]}


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_html(document()), encoding="utf-8")
    return path


def details_holding(dom: str, text: str) -> str:
    """The opening tag of the sample block around ``text`` in a dumped DOM."""
    at = dom.index(text)
    start = dom.rindex("<details", 0, at)
    assert dom.find("</details>", start) > at, "the answer is not inside a sample block"
    return dom[start:dom.index(">", start) + 1]


def test_the_failing_answer_is_in_the_rendered_dom_and_visible(tmp_path, page):
    dump = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    assert ANSWER in dom
    tag = details_holding(dom, ANSWER)
    assert re.search(r"\sopen(=\"\")?[\s>]", tag), tag
    assert "hidden" not in tag and 'data-outcome="fail"' in tag
    # The script ran: it counted the samples shown.
    assert "17 of 17 samples shown" in dom
    # The gate table is first, with the power statement of the 12-sample lower gate.
    assert dom.index('class="gate-table"') < dom.index(ANSWER)
    assert "12 samples can never pass at the lower 95% bound" in dom


def test_the_filter_hides_what_was_not_asked_for(tmp_path, page):
    dump = chromium(tmp_path, "--dump-dom", page.as_uri() + "#outcome=pass")
    assert dump.returncode == 0, dump.stderr[-2000:]
    assert "hidden" in details_holding(dump.stdout, ANSWER)
    assert "16 of 17 samples shown" in dump.stdout
    dump = chromium(tmp_path, "--dump-dom", page.as_uri() + "#harness=tron_format")
    section = re.search(r'<section[^>]*data-harness-section="empty_constructor"[^>]*>',
                        dump.stdout).group(0)
    assert "hidden" in section and "5 of 17 samples shown" in dump.stdout


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the decompressed pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pixels, offset = b"", 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            pixels += data[offset + 8:offset + 8 + length]
        offset += 12 + length
    return width, height, len(set(zlib.decompress(pixels)))


def test_screenshot_is_a_real_image(tmp_path, page):
    shot = tmp_path / "report.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000",
                      page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    width, height, values = png_facts(data)
    assert (width, height) == (1280, 2000)
    assert len(data) > 10_000, f"screenshot of {len(data)} bytes looks empty"
    assert values > 50, "the screenshot is a blank page"
