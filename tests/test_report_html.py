"""The HTML report: the gate table first with what each sample count can decide, then per
harness the samples, failing first and open, with the model's answer (escaped) and reasons,
filterable, with no external asset. The browser test is in test_report_screenshot.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from loragate.gating.outcomes import CanaryOutcome, SampleOutcome
from loragate.gating.report import render_compare_html, render_html, render_sample_html
from loragate.gating.verdict import GateRule
from tests.verdicts import verdict_json


def document() -> dict:
    rules = {"pdca_schema": GateRule("ship", 0.95),
             "refusal": GateRule("ship", 0.98, "f1")}
    samples = [SampleOutcome(f"t::pdca[{i}]", "pdca_schema", i != 3, f"reason {i}",
                             sample_id=f"pdca-{i:02d}", answer=f"answer number {i}",
                             reasons=(f"reason {i}",) if i == 3 else (), finish_reason="stop",
                             prompt_tokens=30, completion_tokens=12, ttft_s=0.05, total_s=0.4,
                             seed=42, messages_digest="d" * 12)
               for i in range(20)]
    samples += [SampleOutcome(f"t::ref[{i}]", "refusal", True, "", expected=label,
                              predicted=label)
                for i, label in enumerate(["refuse", "comply"] * 5)]
    canaries = [CanaryOutcome("c01", True, True), CanaryOutcome("c02", False, True, "missing")]
    verdict = verdict_json(samples, rules, canaries=canaries)
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


def sample_blocks(html: str) -> list[str]:
    return re.findall(r"<details class=\"sample\".*?</details>", html, flags=re.S)


def test_failing_samples_come_first_open_with_their_answer():
    html = render_html(document())
    blocks = [b for b in sample_blocks(html) if 'data-harness="pdca_schema"' in b]
    assert len(blocks) == 20
    assert "answer number 3" in blocks[0] and 'data-outcome="fail"' in blocks[0]
    assert blocks[0].split(">", 1)[0].endswith(" open")
    assert all(" open>" not in b.split("\n", 1)[0] for b in blocks[1:])
    assert "finish reason" in blocks[0] and "prompt 30, completion 12" in blocks[0]
    # The samples come before the model section; the gate table before the samples.
    assert html.index('id="loragate-gates"') < html.index("answer number 3") < html.index(
        "<h2>Model</h2>")


def test_answers_are_escaped():
    doc = document()
    doc["samples"][3]["answer"] = "<script>alert('answer')</script>"
    html = render_html(doc)
    assert "<script>alert('answer')</script>" not in html
    assert "&lt;script&gt;alert(&#39;answer&#39;)&lt;/script&gt;" in html
    fragment = render_sample_html(doc["samples"][3])
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment


def test_render_sample_html_for_pytest_html_extras():
    fragment = render_sample_html(document()["samples"][3])
    assert fragment.lstrip().startswith('<details class="sample"')
    assert " open>" in fragment.split("\n", 2)[0] + fragment.split("\n", 2)[1]
    assert "answer number 3" in fragment and "<li>reason 3</li>" in fragment
    assert "ddddddddddddd" not in fragment and "dddddddddddd" in fragment
    passing = render_sample_html(document()["samples"][0])
    assert 'data-outcome="pass"' in passing and " open" not in passing.split(">", 1)[0]


def test_old_verdicts_without_evidence_still_render():
    doc = document()
    doc["samples"] = [{k: s[k] for k in ("nodeid", "harness", "passed", "reason", "sample_id",
                                          "expected", "predicted", "error", "skipped")}
                      for s in doc["samples"]]
    for h in doc["harnesses"].values():
        for key in ("power", "can_pass", "interval_low", "interval_high", "flaky"):
            h.pop(key)
    html = render_html(doc)
    assert "answer not recorded" in html and "reason 3" in html


def test_filters_name_every_harness_and_outcome():
    html = render_html(document())
    harnesses = re.search(r'<select id="filter-harness">(.*?)</select>', html, re.S).group(1)
    assert 'value="pdca_schema"' in harnesses and 'value="refusal"' in harnesses
    outcomes = re.search(r'<select id="filter-outcome">(.*?)</select>', html, re.S).group(1)
    for value in ("fail", "error", "skipped", "pass", "flaky"):
        assert f'value="{value}"' in outcomes
    assert 'data-harness-section="refusal"' in html and "addEventListener" in html


def test_power_statement_beside_each_gate():
    html = render_html(document())
    table = html[html.index('id="loragate-gates"'):html.index("</table>")]
    assert "what the sample count can decide" in table
    assert "20 samples can pass on the point estimate with at most 1 failing" in table


def test_flaky_prompts_are_shown():
    doc = document()
    doc["harnesses"]["pdca_schema"]["flaky"] = [
        {"sample_id": "pdca-03", "runs": 3, "passed": 1, "pass_fraction": 1 / 3}]
    html = render_html(doc)
    assert "flaky prompt" in html and "1/3" in html and "33.3%" in html
    block = next(b for b in sample_blocks(html) if "answer number 3" in b)
    assert 'data-flaky="1"' in block


class References(HTMLParser):
    """What a page would load: URL-valued attributes of its elements, and url()/@import in its
    inline styles and scripts (text a page shows is not parsed as either)."""

    ATTRIBUTES = {"src", "href", "srcset", "action", "poster", "data", "formaction"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._code = tag in ("style", "script")
        if tag == "link":
            self.found.append(f"<link {attrs}>")
        self.found += [f"{tag} {k}={v}" for k, v in attrs if k in self.ATTRIBUTES and v]
        self.found += [f"{tag} style={v}" for k, v in attrs if k == "style" and v
                       and re.search(r"url\(|@import", v)]

    def handle_endtag(self, tag: str) -> None:
        self._code = False

    def handle_data(self, data: str) -> None:
        if self._code:
            self.found += re.findall(r"url\([^)]*\)|@import[^;]*|https?://\S+", data)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.found


def test_no_external_assets():
    from loragate.gating.compare import compare_verdicts

    doc = document()
    doc["samples"][3]["answer"] = "see https://example.com/x.js and <img src=http://x/y.png>"
    for html in (render_html(doc), render_compare_html(compare_verdicts(doc, document()))):
        assert references(html) == []
    assert "https://example.com/x.js" in render_html(doc)  # shown as text, not loaded
    # The check sees a reference when there is one.
    assert references('<script src="https://cdn.example/x.js"></script>')
    assert references("<style>body { background: url(//cdn.example/a.png) }</style>")
    assert references('<link rel="stylesheet" href="s.css">')
    assert references('<img src="data:x">')


def test_comparison_html_escapes_reasons():
    from loragate.gating.compare import compare_verdicts

    old, new = document(), document()
    new["samples"][0] = {**new["samples"][0], "passed": False, "reason": "<b>bold</b>"}
    html = render_compare_html(compare_verdicts(old, new, old_label="a", new_label="b"))
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "pdca-00" in html and "pass→fail" in html
