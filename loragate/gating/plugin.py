"""The loragate pytest plugin: harness samples in, one deployment verdict out.

Registered through the ``pytest11`` entry point. A gate test records each sample through
the ``gate_sample`` fixture; canary tests through ``canary_outcome``; any test may add figures
to the verdict (latency, load time, cache hit ratio) through ``verdict_metrics``. Records
travel in ``report.user_properties`` so they cross pytest-xdist workers, and the controller
computes the verdict at session end (:mod:`loragate.gating.verdict`).

When a session recorded anything for the verdict, its exit status *is* the verdict:
0 cleared, 1 blocked, whatever the count of failed samples. A session that recorded nothing
(the unit tests) keeps pytest's own exit status.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from loragate import __version__
from loragate.config import LoragateConfig, load_config, project_root_for, resolve_paths
from loragate.gating.verdict import (
    SCHEMA,
    CanaryOutcome,
    CheckOutcome,
    GateRule,
    SampleOutcome,
    compute_verdict,
    inputs_hash,
    max_failures_allowed,
)

SAMPLE_KEY = "loragate.sample"
CANARY_KEY = "loragate.canary"
METRIC_KEY = "loragate.metric"
COUNT_KEY = "loragate.count"
GATE_MARKERS = ("ship_gate", "quality_gate")
CHECK_MARKERS = ("stage", "smoke")
STASH_KEY = pytest.StashKey["VerdictSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loragate", "loragate deployment verdict")
    group.addoption("--model", default=None, metavar="SPEC",
                    help="model under test: gguf:PATH | ollama:NAME | openai:URL#MODEL | "
                         "hf:PATH[+ADAPTER]")
    group.addoption("--baseline", default=None, metavar="SPEC",
                    help="baseline model for the canaries (same spec forms as --model)")
    group.addoption("--samples", type=int, default=None, metavar="N",
                    help="samples per harness (default: each harness's configured count)")
    group.addoption("--temperature", type=float, default=0.7,
                    help="sampling temperature for gate generation (default: 0.7, the plan's)")
    group.addoption("--seed", type=int, default=42, help="generation seed (default: 42)")
    group.addoption("--verdict-json", default=None, metavar="PATH",
                    help="write the verdict JSON here")
    group.addoption("--verdict-html", default=None, metavar="PATH",
                    help="write loragate's standalone HTML report here")
    group.addoption("--gate-confidence", choices=("point", "lower"), default="point",
                    help="pass a gate on the point estimate or on the lower bound of its 95%% "
                         "interval (Wilson for pass rates, bootstrap for F1)")
    group.addoption("--fail-fast-gates", action="store_true", default=False,
                    help="skip a harness's remaining samples once its gate cannot be met")
    group.addoption("--no-cache", action="store_true", default=False,
                    help="do not read or write the response cache")
    group.addoption("--loragate-config", default=None, metavar="PATH",
                    help="loragate config with gate thresholds (default: config/tiny_cpu.json "
                         "under the rootdir, else built-in defaults)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ship_gate: a harness sample whose gate blocks a deploy")
    config.addinivalue_line("markers", "quality_gate: a harness sample whose gate lowers the score")
    config.addinivalue_line("markers", "canary: a must-not-regress task compared with a baseline")
    config.addinivalue_line("markers", "smoke: a deployment smoke test against the served model")
    config.addinivalue_line("markers", "stage: a Step 1 / Step 2 check of a pipeline artifact")
    config.addinivalue_line("markers", "harness(name): the harness a gate sample belongs to")
    state = VerdictSession.from_config(config)
    config.stash[STASH_KEY] = state
    config.pluginmanager.register(VerdictPlugin(config, state), "loragate-verdict")


# ---------------------------------------------------------------------------------------------
# The session state (one object on the pytest config; no module globals)


@dataclass
class VerdictSession:
    rules: dict[str, GateRule]
    overall_target: float
    data_files: list[Path]
    settings: LoragateConfig
    started: float = field(default_factory=time.time)
    planned: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    samples: dict[str, SampleOutcome] = field(default_factory=dict)
    canaries: dict[str, CanaryOutcome] = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    document: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> VerdictSession:
        settings = _load_settings(config)
        gates = settings.gates
        rules = {
            name: GateRule(gate=s.gate, threshold=s.threshold, metric=s.metric)
            for name, s in gates.harnesses.items()
        }
        return cls(rules=rules, overall_target=gates.overall_target,
                   data_files=[gates.prompts_dir, settings.canaries.file], settings=settings)

    @property
    def has_records(self) -> bool:
        return bool(self.samples or self.canaries)


def _load_settings(config: pytest.Config) -> LoragateConfig:
    """The config named by ``--loragate-config``, else ``config/tiny_cpu.json`` under the
    rootdir, else the built-in defaults rooted at the rootdir."""
    path = config.getoption("loragate_config")
    default = Path(config.rootpath) / "config" / "tiny_cpu.json"
    if path is None and default.is_file():
        path = default
    if path is not None:
        return load_config(path, check_paths=False)
    placeholder = config.rootpath / "config" / "defaults.json"
    settings = LoragateConfig(model_name="unset", output_dir=Path("outputs"),
                              dataset_files=[Path("data/train.jsonl")],
                              eval_file=Path("data/eval.jsonl"))
    return resolve_paths(settings, project_root_for(placeholder))


# ---------------------------------------------------------------------------------------------
# Fixtures through which tests record


@dataclass
class SampleRecorder:
    """Records one harness sample; a failed sample then fails its test item with the reason."""

    item: pytest.Item
    harness: str | None

    def record(self, passed: bool, reason: str = "", *, sample_id: str | None = None,
               expected: str | None = None, predicted: str | None = None,
               error: bool = False, harness: str | None = None) -> None:
        harness = harness or self.harness
        if harness is None:
            raise ValueError(
                f"{self.item.nodeid}: no harness: mark the test with "
                "@pytest.mark.harness(NAME) or pass harness="
            )
        outcome = SampleOutcome(
            nodeid=self.item.nodeid, harness=harness, passed=bool(passed), reason=reason,
            sample_id=sample_id, expected=expected, predicted=predicted, error=error,
        )
        self.item.user_properties.append((SAMPLE_KEY, asdict(outcome)))
        if not passed:
            pytest.fail(f"[{harness}] {reason or 'sample failed'}", pytrace=False)


@pytest.fixture
def gate_sample(request: pytest.FixtureRequest) -> SampleRecorder:
    """Record one harness sample: ``gate_sample.record(passed, reason, expected=, predicted=)``."""
    marker = request.node.get_closest_marker("harness")
    return SampleRecorder(item=request.node, harness=marker.args[0] if marker else None)


@dataclass
class CanaryRecorder:
    item: pytest.Item

    def record(self, canary_id: str, *, model_passed: bool, baseline_passed: bool,
               model_reason: str = "", baseline_reason: str = "") -> None:
        outcome = CanaryOutcome(canary_id, bool(model_passed), bool(baseline_passed),
                                model_reason, baseline_reason)
        self.item.user_properties.append((CANARY_KEY, asdict(outcome)))
        if outcome.regressed:
            pytest.fail(f"canary {canary_id} regressed: baseline passed, model failed: "
                        f"{model_reason}", pytrace=False)
        if not model_passed:
            pytest.xfail(f"canary {canary_id}: model and baseline both fail: {model_reason}")


@pytest.fixture
def canary_outcome(request: pytest.FixtureRequest) -> CanaryRecorder:
    """Record one canary: ``canary_outcome.record(id, model_passed=, baseline_passed=)``."""
    return CanaryRecorder(item=request.node)


@pytest.fixture(scope="session")
def loragate_settings(request: pytest.FixtureRequest) -> LoragateConfig:
    """The loragate config of this session (``--loragate-config``)."""
    return request.config.stash[STASH_KEY].settings


@dataclass
class MetricsRecorder:
    item: pytest.Item

    def add(self, section: str, name: str, value: Any) -> None:
        """Put ``value`` at ``metrics[section][name]`` in the verdict (JSON-serialisable)."""
        json.dumps(value)  # fail here, in the test, rather than at session end
        self.item.user_properties.append(
            (METRIC_KEY, {"section": section, "name": name, "value": value})
        )

    def count(self, section: str, name: str, increment: int = 1) -> None:
        """Add ``increment`` to ``metrics[section][name]``, summed over the whole session."""
        self.item.user_properties.append(
            (COUNT_KEY, {"section": section, "name": name, "value": int(increment)})
        )


@pytest.fixture
def verdict_metrics(request: pytest.FixtureRequest) -> MetricsRecorder:
    """Add figures to the verdict: ``verdict_metrics.add("latency", "ttft_p50_ms", 12.3)``."""
    return MetricsRecorder(item=request.node)


# ---------------------------------------------------------------------------------------------
# The hooks that follow the run: one object per pytest config, registered in pytest_configure


def _harness_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("harness")
    return marker.args[0] if marker and marker.args else None


class VerdictPlugin:
    """Collects outcomes, decides gates early when asked, and writes the verdict."""

    def __init__(self, config: pytest.Config, state: VerdictSession) -> None:
        self.config = config
        self.state = state

    # -- collection and fail-fast ---------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.state.planned = {}
        for item in items:
            harness = _harness_of(item)
            if harness is not None:
                self.state.planned[harness] = self.state.planned.get(harness, 0) + 1
                # Keywords are serialised with reports across xdist; marker arguments are not.
                item.keywords[f"harness:{harness}"] = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not self.config.getoption("fail_fast_gates"):
            return
        harness = _harness_of(item)
        rule = self.state.rules.get(harness) if harness else None
        # F1 cannot be bounded without the remaining samples' labels: fail-fast is for pass
        # rates. Under xdist each worker counts only its own failures: a subset, so a worker
        # may skip later than a serial run would, never wrongly.
        if rule is None or rule.metric != "pass_rate":
            return
        allowed = max_failures_allowed(self.state.planned.get(harness, 0), rule.threshold)
        failures = self.state.failures.get(harness, 0)
        if failures > allowed:
            pytest.skip(f"gate decided: {harness} has {failures} failures, at most {allowed} "
                        f"allowed for threshold {rule.threshold}")

    # -- outcomes (on the controller; locally on workers too, for fail-fast) ------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.state
        recorded = False
        for key, value in report.user_properties:
            if report.when != "call":
                continue
            if key == SAMPLE_KEY:
                self._add_sample(SampleOutcome(**value))
                recorded = True
            elif key == CANARY_KEY:
                outcome = CanaryOutcome(**value)
                state.canaries[outcome.canary_id] = outcome
                recorded = True
            elif key == METRIC_KEY:
                state.metrics.setdefault(value["section"], {})[value["name"]] = value["value"]
            elif key == COUNT_KEY:
                section = state.metrics.setdefault(value["section"], {})
                section[value["name"]] = section.get(value["name"], 0) + value["value"]
        if not recorded:
            self._record_unscored(report)

    def _add_sample(self, outcome: SampleOutcome) -> None:
        self.state.samples[outcome.nodeid] = outcome
        if not outcome.passed:
            failures = self.state.failures
            failures[outcome.harness] = failures.get(outcome.harness, 0) + 1

    def _record_unscored(self, report: pytest.TestReport) -> None:
        """A gate item that errored or was skipped as decided becomes a sample; checks are kept."""
        harness = _harness_keyword(report)
        if harness is not None:
            if report.skipped and "gate decided" in _reason(report):
                self.state.samples[report.nodeid] = SampleOutcome(
                    nodeid=report.nodeid, harness=harness, passed=False, skipped=True,
                    reason=_reason(report))
            elif report.failed:
                # An exception before the sample was scored: an error, never a silent drop.
                self._add_sample(SampleOutcome(
                    nodeid=report.nodeid, harness=harness, passed=False, error=True,
                    reason=f"error in {report.when}: {_reason(report)}"))
            return
        kind = next((m for m in CHECK_MARKERS if m in report.keywords), None)
        if kind is None or "canary" in report.keywords:
            return
        if report.when == "call" or report.failed or report.skipped:
            outcome = "error" if report.failed and report.when != "call" else report.outcome
            self.state.checks[report.nodeid] = CheckOutcome(
                nodeid=report.nodeid, kind=kind, outcome=outcome,
                reason=_reason(report) if outcome != "passed" else "")

    # -- the verdict --------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config) or not self.state.has_records:
            return
        document = self.document()
        _write_outputs(self.config, document)
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = 0 if document["verdict"] == "cleared" else 1

    def document(self) -> dict[str, Any]:
        if self.state.document is None:
            self.state.document = build_document(self.config, self.state)
        return self.state.document

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from loragate.gating.report import render_text

        if self.state.document is None:
            return
        terminalreporter.section("loragate verdict")
        for line in render_text(self.state.document).splitlines():
            terminalreporter.write_line(line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str]) -> None:
        """Put the gate table at the top of pytest-html's report."""
        from loragate.gating.report import render_gate_table_html

        if self.state.has_records and not _is_worker(self.config):
            prefix.append(render_gate_table_html(self.document()))


def _harness_keyword(report: pytest.TestReport) -> str | None:
    for keyword in report.keywords:
        if isinstance(keyword, str) and keyword.startswith("harness:"):
            return keyword.split(":", 1)[1]
    return None


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.removeprefix("Failed: ")
    text = str(longrepr).strip()
    return text.splitlines()[-1] if text else ""


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def build_document(config: pytest.Config, state: VerdictSession) -> dict[str, Any]:
    confidence = config.getoption("gate_confidence")
    verdict = compute_verdict(
        list(state.samples.values()), state.rules,
        canaries=list(state.canaries.values()), checks=list(state.checks.values()),
        overall_target=state.overall_target, confidence=confidence,
    )
    data_hash = hash_paths(state.data_files)
    model = state.metrics.get("model", {})
    cache = state.metrics.get("cache")
    if cache:
        hits, misses = cache.get("hits", 0), cache.get("misses", 0)
        cache["hit_ratio"] = round(hits / (hits + misses), 4) if hits + misses else None
    return {
        "schema": SCHEMA,
        "loragate_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"spec": config.getoption("model"), "digest": model.get("digest")},
        "baseline": {"spec": config.getoption("baseline"),
                     "digest": model.get("baseline_digest")},
        "generation": {"temperature": config.getoption("temperature"),
                       "seed": config.getoption("seed"),
                       "samples": config.getoption("samples"),
                       "cache": not config.getoption("no_cache")},
        "thresholds": {name: asdict(rule) for name, rule in sorted(state.rules.items())},
        "data_hash": data_hash,
        "inputs_hash": inputs_hash(data_hash, state.rules, state.overall_target),
        **verdict,
        "metrics": {k: dict(sorted(v.items())) for k, v in sorted(state.metrics.items())},
        "timings": {"session_s": round(time.time() - state.started, 3)},
        "samples": [asdict(s) for s in sorted(state.samples.values(), key=lambda s: s.nodeid)],
    }


def hash_paths(paths: list[Path]) -> str:
    """sha256 over the files (or the files under the folders) given, in a stable order."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_outputs(config: pytest.Config, document: dict[str, Any]) -> None:
    from loragate.gating.report import render_html

    json_path = config.getoption("verdict_json")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    html_path = config.getoption("verdict_html")
    if html_path:
        path = Path(html_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(document), encoding="utf-8")
