"""The figures the README quotes from the configs, the data and the recordings are read
from those files here, so the README cannot drift from them again (a figure changes: this
test names the sentence to change)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROSE = re.sub(r"\s+", " ", README)


def config(name: str) -> dict:
    return json.loads((ROOT / "config" / f"{name}.json").read_text(encoding="utf-8"))


def records(path: str) -> int:
    return sum(1 for line in (ROOT / path).read_text(encoding="utf-8").splitlines()
               if line.strip())


def figure(pattern: str) -> str:
    """The one figure ``pattern`` (a regex with one group) finds in the README's prose."""
    found = re.findall(pattern, PROSE)
    assert len(found) == 1, f"README: expected one match of {pattern!r}, found {found}"
    return found[0]


def test_the_gate_table_is_the_default_profiles_rules() -> None:
    gates = config("tiny_cpu")["gates"]
    rows = dict(re.findall(r"^\| `(\w+)` \| (ship \| .*?|quality \| .*?) \|$", README, re.M))
    expected = {}
    for name, rule in gates["harnesses"].items():
        if rule.get("metric") == "f1":
            bound = f"F1 ≥ {rule['threshold']:.2f}"
        else:
            bound = f"≥ {round(100 * rule['threshold'])}%"
        expected[name] = f"{rule['gate']} | {bound}"
    assert rows == expected
    assert float(figure(r"refusal as F1 × 100\) is ≥ (\d+)")) == gates["overall_target"]


def test_the_data_figures_are_the_files() -> None:
    cpu = config("tiny_cpu")
    samples = sum(records(path) for path in cpu["dataset_files"])
    assert int(figure(r"seven training files \(([\d,]+) samples").replace(",", "")) == samples
    assert len(cpu["dataset_files"]) == 7
    per_harness = {records(f"data/prompts/{name}.jsonl") for name in cpu["gates"]["harnesses"]}
    assert per_harness == {int(figure(r"(\d+) held-out prompts per harness"))}
    assert records(cpu["canaries"]["file"]) == int(figure(r"holds the plan's (\d+) must-not"))
    assert records("data/replay_prompts.jsonl") == int(
        figure(r"`data/replay_prompts.jsonl` \((\d+)"))


def test_the_gated_sample_counts_are_the_profiles() -> None:
    counts = {name: rule["samples"]
              for name, rule in config("tiny_cpu")["gates"]["harnesses"].items()}
    first, refusal = figure(r"on the first (\d+ prompts of each set \(\d+) for refusal\)"
                            ).split(" prompts of each set (")
    assert counts.pop("refusal") == int(refusal)
    assert set(counts.values()) == {int(first)}


def test_the_full_recipe_figures_are_its_config() -> None:
    full = config("tiny_cpu_full")
    budget = figure(r"in (\d+)-minute runs")
    assert full["training"]["time_budget"] == f"{budget}m"
    epochs = figure(r"the full recipe on this CPU, (\w+) epochs? since")
    assert full["training_args"]["num_train_epochs"] == {"one": 1, "two": 2}[epochs]
    assert float(figure(r"`data_args.replay_ratio` > 0 \(([\d.]+) there\)")) == \
        full["data_args"]["replay_ratio"]
    lr = figure(r"tiny_cpu_full train at a peak learning rate of ([\de.-]+)")
    assert float(lr) == full["training_args"]["learning_rate"]
    warmup = figure(r"peak learning rate of [\de.-]+ with (\d+)% warm-up")
    assert int(warmup) / 100 == full["training_args"]["warmup_ratio"]


@pytest.mark.parametrize("wrong", ["1,370", "686 steps of 4"])
def test_figures_found_stale_before_stay_gone(wrong: str) -> None:
    assert wrong not in PROSE


# -- exit statuses: one table, the same in the docs, --help and the README ---------------------


def test_docs_verdict_md_holds_the_status_table() -> None:
    from loragate.exit_codes import status_table

    page = (ROOT / "docs" / "verdict.md").read_text(encoding="utf-8")
    assert status_table() in page, "docs/verdict.md: paste loragate.exit_codes.status_table()"


def test_help_states_the_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    from loragate.cli import main
    from loragate.exit_codes import status_summary

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert " ".join(status_summary().split()) in " ".join(capsys.readouterr().out.split())


def test_the_readme_names_the_gate_statuses_of_the_table() -> None:
    from loragate.exit_codes import COMMAND_STATUSES

    line = next(text for text in README.splitlines() if text.startswith("echo $?"))
    named = {int(code) for code in re.findall(r"\b(\d) [a-z]", line.split("#", 1)[1])}
    assert named == {int(code) for code in COMMAND_STATUSES["pytest --model / loragate gate"]}


# `check` reads a config since it runs a project's own harnesses (tests/test_harness_spec.py).
@pytest.mark.parametrize("command", [["init", "somewhere"], ["data", "generate"]])
def test_commands_without_a_config_refuse_config_as_a_usage_error(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from loragate.cli import main
    from loragate.exit_codes import ExitCode

    with pytest.raises(SystemExit) as exited:
        main([*command, "--config=x.json"])
    assert exited.value.code == ExitCode.USAGE
    assert "unrecognized arguments: --config=x.json" in capsys.readouterr().err


# -- the recorded runs: the README's tables and figures are the recorded files' ----------------

RECORDED = ROOT / "reports" / "recorded"
TABLE_HEADER = "| harness | gate | threshold | base | tuned | fail→pass | pass→fail |"


def recorded_tables() -> list[tuple[str, list[list[str]]]]:
    """Each ``reports/recorded/NAME/`` the README introduces (``… `reports/recorded/NAME/`
    is …``) with the rows of the first gate table after it."""
    found = []
    for match in re.finditer(r"`reports/recorded/([\w-]+)/` is", README):
        rest = README[match.end():]
        start = rest.index(TABLE_HEADER)
        rows = []
        for line in rest[start:].splitlines()[2:]:
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        found.append((match.group(1), rows))
    return found


def load_recording(name: str) -> tuple[dict, dict]:
    folder = RECORDED / name
    return tuple(json.loads((folder / f"verdict-{side}.json").read_text(encoding="utf-8"))
                 for side in ("base", "tuned"))


def test_the_readme_introduces_every_recording() -> None:
    """Every recording of a base and a tuned verdict has its table; one of a single verdict
    (the GPU run's) is at least named."""
    introduced = {name for name, _ in recorded_tables()}
    paired = {path.parent.name for path in RECORDED.glob("*/verdict-base.json")}
    assert introduced == paired
    for folder in RECORDED.iterdir():
        assert f"reports/recorded/{folder.name}/" in README, folder


@pytest.mark.parametrize("name", [name for name, _ in recorded_tables()])
def test_a_recorded_table_is_its_recording(name: str) -> None:
    from loragate.gating.compare import compare_verdicts
    from loragate.gating.formatting import harness_cell

    rows = dict(recorded_tables())[name]
    base, tuned = load_recording(name)
    flips = {h["harness"]: h for h in compare_verdicts(base, tuned)["harnesses"]}
    expected = []
    for harness in sorted(tuned["harnesses"]):
        rule = tuned["thresholds"][harness]
        threshold = (f"F1 {rule['threshold']:.2f}" if rule["metric"] == "f1"
                     else f"{rule['threshold']:.2f}")
        expected.append([harness, rule["gate"], threshold,
                         harness_cell(base["harnesses"].get(harness)),
                         harness_cell(tuned["harnesses"][harness]),
                         str(len(flips[harness]["fail_to_pass"])),
                         str(len(flips[harness]["pass_to_fail"]))])
    expected.append(["overall", "", f"≥ {tuned['overall']['target']:.0f}",
                     f"{base['overall']['score']:.1f}", f"{tuned['overall']['score']:.1f}", "",
                     ""])
    assert rows == expected


@pytest.mark.parametrize("name", [name for name, _ in recorded_tables()])
def test_a_recorded_runs_prose_figures_are_its_recording(name: str) -> None:
    """The canary counts, the training steps and the verdict words said beside the table."""
    base, tuned = load_recording(name)
    start = PROSE.index(f"`reports/recorded/{name}/` is")
    nxt = PROSE.find("`reports/recorded/", start + 1)
    text = PROSE[start: nxt if nxt > 0 else None]
    canaries = (base["canaries"], tuned["canaries"])
    n = tuned["canaries"]["n"]
    assert (f"base {canaries[0]['model_passed']}/{n}, tuned {canaries[1]['model_passed']}/{n}"
            in text)
    stats = json.loads((RECORDED / name / "training_stats.json").read_text(encoding="utf-8"))
    assert f"{stats['completed_steps']} steps" in text
    assert f"tuned verdict **{tuned['verdict']}**" in text
    assert f"base's **{base['verdict']}**" in text


# Figures the prose beside a recorded table quotes, each with the recorded value it must be.
# A pattern that does not occur in a section checks nothing there; each recording must match
# several (see the test), so a rewrite that drops them all cannot pass unnoticed.
def _prose_figures(name: str) -> list[tuple[str, str, float]]:
    """(what, quoted, recorded) for every figure of ``name``'s section a pattern finds."""
    base, tuned = load_recording(name)
    folder = RECORDED / name
    stats = json.loads((folder / "training_stats.json").read_text(encoding="utf-8"))
    stages = {s["stage"]: s["seconds"] for s in json.loads(
        (folder / "timings.json").read_text(encoding="utf-8"))["stages"]}
    latency = tuned["metrics"].get("latency", {})
    probes = tuned["canaries"]["probes"]
    judges = tuned.get("judges", {})
    start = PROSE.index(f"`reports/recorded/{name}/` is")
    nxt = PROSE.find("`reports/recorded/", start + 1)
    text = " ".join(PROSE[start: nxt if nxt > 0 else None].split())
    patterns = [
        (r"[Ee]val loss (\d\.\d+) → (\d\.\d+)",
         ("base eval loss", stats["base_eval_loss"]), ("eval loss", stats["eval_loss"])),
        (r"final (?:training|logged) loss (\d\.\d+)", ("final loss", stats["final_train_loss"])),
        (r"peak memory (\d+\.\d) GB", ("peak memory", stats["peak_memory_gb"])),
        (r"McNemar p = (\d\.\d+)", ("canary McNemar p", tuned["canaries"]["mcnemar_p"])),
        (r"ranks (\d+) of \d+ minimal pairs right", ("probes model", probes["model_right"])),
        (r"the base (\d+)(?: of \d+)? ?\(", ("probes base", probes["baseline_right"])),
        (r"Wilcoxon p = (\d\.\d+)", ("Wilcoxon p", probes["wilcoxon_p"])),
        (r"knowledge p95 time to first token (\d+\.\d) ms over (\d+) calls",
         ("knowledge TTFT p95", latency.get("knowledge_ttft_p95_ms")),
         ("knowledge calls", latency.get("knowledge_n"))),
        (r"cold first call (\d+\.\d) ms", ("knowledge cold TTFT",
                                           latency.get("knowledge_cold_ttft_ms"))),
        (r"history p95 (\d+\.\d) ms", ("history TTFT p95", latency.get("history_ttft_p95_ms"))),
        (r"history p95 time to first token (\d+) ms",
         ("history TTFT p95", latency.get("history_ttft_p95_ms"))),
        (r"tool query p95 total (\d+\.\d) ms", ("tool total p95",
                                                latency.get("tool_total_p95_ms"))),
        (r"tool query p95 (\d+) ms", ("tool total p95", latency.get("tool_total_p95_ms"))),
        (r"packaged \((\d+) s\)", ("package s", stages.get("package"))),
        (r"the tuned model \((\d+) s\) and the base \((\d+) s\)",
         ("tuned verdict s", stages.get("verdict-tuned")),
         ("base verdict s", stages.get("verdict-base"))),
        (r"(\d+) s for the tuned verdict, (\d+) s for the base's",
         ("tuned verdict s", stages.get("verdict-tuned")),
         ("base verdict s", stages.get("verdict-base"))),
        (r"last \d+ steps in (\d+) s", ("train s", stages.get("train"))),
        (r"right answers accepted (\d+\.\d)%, wrong rejected (\d+\.\d)% \(κ (\d\.\d+)\)",
         ("canary judge accepted %", 100 * judges["canaries"]["recall"]),
         ("canary judge rejected %", 100 * judges["canaries"]["specificity"]),
         ("canary judge kappa", judges["canaries"]["kappa"])),
        (r"refusals recognised (\d+)%, compliance (\d+)% \(κ (\d\.\d+)\)",
         ("refusal judge recognised %", 100 * judges["refusal"]["recall"]),
         ("refusal judge compliance %", 100 * judges["refusal"]["specificity"]),
         ("refusal judge kappa", judges["refusal"]["kappa"])),
    ]
    found = []
    for pattern, *expected in patterns:
        for match in re.finditer(pattern, text):
            for (what, recorded), quoted in zip(expected, match.groups(), strict=True):
                assert recorded is not None, f"{name}: the README quotes {what}, not recorded"
                found.append((what, quoted, float(recorded)))
    return found


@pytest.mark.parametrize("name", [name for name, _ in recorded_tables()])
def test_every_figure_quoted_beside_a_recording_is_the_recorded_one(name: str) -> None:
    found = _prose_figures(name)
    assert len(found) >= 8, f"{name}: only {len(found)} figures recognised: {found}"
    for what, quoted, recorded in found:
        # The README rounds to the digits it shows.
        digits = len(quoted.split(".")[1]) if "." in quoted else 0
        tolerance = 0.5 * 10 ** -digits + 1e-9
        assert abs(float(quoted) - recorded) <= tolerance, f"{name}: {what} quoted {quoted}, " \
            f"recorded {recorded}"
