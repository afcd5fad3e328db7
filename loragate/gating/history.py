"""``loragate report --history V1 V2 …``: how a model's verdicts moved over runs.

Each verdict becomes one point (ordered by when it was written): the overall score against
its target, each harness's score against its threshold, the canaries passed. The page draws
them as inline SVG line charts, one per series group, with the threshold as a dashed line; it
is one file that loads nothing, like the verdict report. A harness absent from a run leaves a
gap in its line, never a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loragate.gating.document import VerdictDocument

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
WIDTH, HEIGHT, PAD = 640, 220, 36


@dataclass(frozen=True)
class HistoryPoint:
    """One verdict, as the history charts read it (scores 0..100)."""

    label: str
    created_at: str
    verdict: str
    overall: float
    target: float
    harnesses: dict[str, float | None]
    thresholds: dict[str, float]
    canaries: tuple[int, int] | None  # (passed, n)


@dataclass
class Chart:
    """One chart: named series over the runs, and the line each must reach."""

    title: str
    series: dict[str, list[float | None]]
    goal: float | None = None
    goal_label: str = ""
    colors: dict[str, str] = field(default_factory=dict)

    def svg(self, labels: list[str]) -> str:
        return render_svg(self, labels)


def history_points(verdicts: list[tuple[str, VerdictDocument]]) -> list[HistoryPoint]:
    """One point per verdict, oldest first (by ``created_at``; ties keep the given order)."""
    points = []
    for label, document in verdicts:
        canaries = document.canaries
        points.append(HistoryPoint(
            label=label, created_at=document.created_at, verdict=document.verdict,
            overall=document.overall.score, target=document.overall.target,
            harnesses={name: (h.score if h.evaluated else None)
                       for name, h in document.harnesses.items()},
            thresholds={name: 100 * rule.threshold
                        for name, rule in document.thresholds.items()},
            canaries=(canaries.model_passed, canaries.n) if canaries else None))
    return sorted(points, key=lambda p: p.created_at)


def history_charts(points: list[HistoryPoint]) -> list[Chart]:
    """The overall score, the canaries, then one chart per harness (its threshold drawn)."""
    charts = [Chart("overall score", {"overall": [p.overall for p in points]},
                    goal=points[-1].target, goal_label=f"target {points[-1].target:g}")]
    if any(p.canaries for p in points):
        charts.append(Chart("canaries passed (%)", {"canaries": [
            100 * p.canaries[0] / p.canaries[1] if p.canaries and p.canaries[1] else None
            for p in points]}, goal=100.0, goal_label="all pass"))
    names = sorted({name for p in points for name in p.harnesses})
    for name in names:
        threshold = next((p.thresholds[name] for p in reversed(points)
                          if name in p.thresholds), None)
        charts.append(Chart(name, {name: [p.harnesses.get(name) for p in points]},
                            goal=threshold,
                            goal_label="" if threshold is None else f"threshold {threshold:g}"))
    for chart in charts:
        chart.colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(chart.series)}
    return charts


def _x(index: int, count: int) -> float:
    if count == 1:
        return WIDTH / 2
    return PAD + index * (WIDTH - 2 * PAD) / (count - 1)


def _y(value: float) -> float:
    return HEIGHT - PAD - value * (HEIGHT - 2 * PAD) / 100


def _segments(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive values; a missing value ends a segment (a gap, not a zero)."""
    segments: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            segments.append([])
        else:
            segments[-1].append((index, value))
    return [s for s in segments if s]


def render_svg(chart: Chart, labels: list[str]) -> str:
    from markupsafe import escape

    count = len(labels)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="history-chart" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(chart.title)}">',
             f'<text x="{PAD}" y="16" class="chart-title">{escape(chart.title)}</text>']
    for tick in (0, 50, 100):
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{_y(tick):.1f}" '
                     f'y2="{_y(tick):.1f}" stroke="#ddd"/>'
                     f'<text x="4" y="{_y(tick) + 4:.1f}" class="tick">{tick}</text>')
    if chart.goal is not None:
        parts.append(f'<line class="goal" x1="{PAD}" x2="{WIDTH - PAD}" y1="{_y(chart.goal):.1f}" '
                     f'y2="{_y(chart.goal):.1f}" stroke="#555" stroke-dasharray="5,4"/>'
                     f'<text x="{WIDTH - PAD}" y="{_y(chart.goal) - 4:.1f}" text-anchor="end" '
                     f'class="tick">{escape(chart.goal_label)}</text>')
    for index, label in enumerate(labels):
        # The end labels grow inwards, so a long run name is not cut at the chart's edge.
        anchor = ("middle" if count == 1 or 0 < index < count - 1
                  else "start" if index == 0 else "end")
        parts.append(f'<text x="{_x(index, count):.1f}" y="{HEIGHT - 10}" '
                     f'text-anchor="{anchor}" class="tick">{escape(label)}</text>')
    for name, values in chart.series.items():
        color = chart.colors.get(name, PALETTE[0])
        for segment in _segments(values):
            points = " ".join(f"{_x(i, count):.1f},{_y(v):.1f}" for i, v in segment)
            parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" '
                         f'stroke="{color}" stroke-width="2" points="{points}"/>')
        for index, value in enumerate(values):
            if value is not None:
                parts.append(f'<circle cx="{_x(index, count):.1f}" cy="{_y(value):.1f}" r="4" '
                             f'fill="{color}"><title>{escape(labels[index])}: {escape(name)} '
                             f'{value:.1f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def render_history_text(points: list[HistoryPoint]) -> str:
    """The history as a table: one row per run, the overall score and each harness's."""
    names = sorted({name for p in points for name in p.harnesses})
    header = ["run", "written", "verdict", "overall", "canaries", *names]
    rows = [header]
    for p in points:
        canaries = f"{p.canaries[0]}/{p.canaries[1]}" if p.canaries else "—"
        rows.append([p.label, p.created_at, p.verdict, f"{p.overall:.1f}", canaries,
                     *("—" if p.harnesses.get(n) is None else f"{p.harnesses[n]:.1f}"
                       for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def render_history_html(points: list[HistoryPoint]) -> str:
    from loragate.gating.report import environment

    labels = [p.label for p in points]
    charts = [(chart, chart.svg(labels)) for chart in history_charts(points)]
    return environment().get_template("history.html.j2").render(points=points, charts=charts)


def verdict_label(path: Path, taken: set[str]) -> str:
    """A short label for a verdict file: its folder and name, unique among those given."""
    label = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    while label in taken:
        label += "'"
    taken.add(label)
    return label
