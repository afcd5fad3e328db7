"""``loragate report --history``: verdicts over time as a table and as charts a browser draws."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loragate.cli import main
from loragate.gating.history import _segments, history_charts, history_points
from loragate.gating.outcomes import CanaryOutcome, SampleOutcome
from loragate.gating.verdict import GateRule
from tests.test_report_screenshot import CHROMIUM, chromium, png_facts
from tests.verdicts import document, verdict_json

RULES = {"pdca_schema": GateRule("ship", 0.95), "tron_format": GateRule("quality", 0.9)}


def run(created_at: str, passes: int, *, tron: bool = True, canaries: int = 1) -> dict:
    """A verdict of 10 pdca_schema samples with ``passes`` passing (and tron_format's 10)."""
    samples = [SampleOutcome(f"t::pdca_schema[{i}]", "pdca_schema", i < passes, "")
               for i in range(10)]
    rules = dict(RULES)
    if tron:
        samples += [SampleOutcome(f"t::tron_format[{i}]", "tron_format", i < 9, "")
                    for i in range(10)]
    else:
        rules.pop("tron_format")
    outcomes = [CanaryOutcome(f"c{i}", i < canaries, True) for i in range(4)]
    return {**verdict_json(samples, rules, canaries=outcomes), "thresholds": rules,
            "created_at": created_at}


def write(path: Path, verdict: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document(**verdict).to_json(), encoding="utf-8")
    return path


@pytest.fixture
def three(tmp_path: Path) -> list[Path]:
    # Given out of order: the history orders them by when they were written.
    return [write(tmp_path / "c" / "verdict.json", run("2026-12-03T00:00:00+00:00", 10)),
            write(tmp_path / "a" / "verdict.json", run("2026-12-01T00:00:00+00:00", 4)),
            write(tmp_path / "b" / "verdict.json", run("2026-12-02T00:00:00+00:00", 7,
                                                       tron=False, canaries=3))]


def test_points_are_ordered_by_when_each_verdict_was_written(three):
    from loragate.gating.document import VerdictDocument

    points = history_points([(p.parent.name, VerdictDocument.read(p)) for p in three])
    assert [p.label for p in points] == ["a", "b", "c"]
    assert [p.harnesses["pdca_schema"] for p in points] == [40.0, 70.0, 100.0]
    assert points[1].harnesses.get("tron_format") is None  # not gated in run b
    assert [p.canaries for p in points] == [(1, 4), (3, 4), (1, 4)]
    charts = {chart.title: chart for chart in history_charts(points)}
    assert list(charts) == ["overall score", "canaries passed (%)", "pdca_schema",
                            "tron_format"]
    assert charts["pdca_schema"].goal == pytest.approx(95.0)
    assert charts["tron_format"].series["tron_format"] == [90.0, None, 90.0]


def test_a_missing_value_is_a_gap_not_a_zero():
    assert _segments([1.0, None, 3.0, 4.0]) == [[(0, 1.0)], [(2, 3.0), (3, 4.0)]]
    assert _segments([None, None]) == []


def test_the_command_prints_a_table_and_writes_the_page_beside_the_newest(three, capsys):
    assert main(["report", "--history", *map(str, three)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("a/", "b/", "c/"))]
    assert [row[0] for row in rows] == ["a/verdict", "b/verdict", "c/verdict"]
    assert rows[1][-1] == "—"  # tron_format, not gated in run b
    page = three[0].parent / "history.html"  # c is the newest
    assert page.is_file() and f"HTML history: {page}" in out
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 4 and "threshold 95" in html


@pytest.mark.parametrize(("argv", "message"), [
    (["--history", "{a}"], "give two verdicts or more"),
    (["--history", "{a}", "{missing}"], "nope.json"),
    (["{a}", "--history", "{a}", "{b}"], "--history takes the verdicts itself"),
    (["--history", "{a}", "{broken}"], "broken.json"),
])
def test_bad_input_is_a_usage_error_naming_it(tmp_path, three, capsys, argv, message):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schema": "loragate.verdict/1"}))
    names = {"a": three[1], "b": three[2], "missing": tmp_path / "nope.json", "broken": broken}
    with pytest.raises(SystemExit) as stopped:
        main(["report", *(arg.format(**names) for arg in argv)])
    assert stopped.value.code == 4
    assert message in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(scripts/install-services.sh installs it)")
def test_a_browser_draws_every_chart_with_a_point_per_run(tmp_path, three):
    page = tmp_path / "history.html"
    assert main(["report", "--history", *map(str, three), "--html", str(page)]) == 0
    dump = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dump.returncode == 0, dump.stderr[-2000:]
    figures = re.findall(r'<figure data-chart="([^"]+)">(.*?)</figure>', dump.stdout, re.S)
    assert [title for title, _ in figures] == ["overall score", "canaries passed (%)",
                                               "pdca_schema", "tron_format"]
    for title, svg in figures:
        circles = svg.count("<circle")
        assert circles == (2 if title == "tron_format" else 3), title
    tron = dict(figures)["tron_format"]
    assert tron.count("<polyline") == 2  # the gap in run b splits the line
    shot = tmp_path / "history.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=900,1200",
                      page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    width, height, values = png_facts(shot.read_bytes())
    assert (width, height) == (900, 1200) and values > 50
