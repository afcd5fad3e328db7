"""The loragate pytest plugin: harness samples in, one deployment verdict out.

Registered through the ``pytest11`` entry point, so ``pip install loragate`` is enough for
``pytest --model SPEC`` to gate in any project. A gate test records each sample through the
``gate_sample`` fixture, canary tests through ``canary_outcome``, any test adds figures
through ``verdict_metrics`` (:mod:`loragate.gating.fixtures`). A configured harness that no
test file covers gets one item per prompt from the plugin itself. Records travel in
``report.user_properties`` so they cross pytest-xdist workers, and the controller computes
the verdict at session end (:mod:`loragate.gating.verdict`).

A session gates when it is given ``--model``, ``--baseline``, ``--loragate-config``,
``--verdict-json`` or ``--verdict-html``. Then its exit status *is* the verdict: 0 cleared,
1 blocked, 6 the gate could not run, 4 a usage error, 5 nothing to gate
(``docs/verdict.md``). Any other session is left alone: no config read, no verdict, pytest's
own exit status.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from loragate import __version__
from loragate.artifacts import tree_digest
from loragate.backends.base import MAX_SEED
from loragate.gating.items import (
    canary_records,
    candidate_of,
    harness_records,
    make_canary_items,
    make_harness_items,
    parametrize_records,
)
from loragate.gating.outcomes import (
    CANARY_KINDS,
    CanaryOutcome,
    CheckOutcome,
    SampleOutcome,
    SessionRecords,
    samples_from_json,
)
from loragate.gating.recorders import (
    CANARY_KEY,
    COUNT_KEY,
    GATE_ERROR_KEY,
    METRIC_KEY,
    SAMPLE_KEY,
    prompt_id,
)
from loragate.gating.session import (
    INI_CONFIG,
    STASH_KEY,
    GateCannotRun,
    GateHarness,
    GateSession,
    check_spec,
    spec_for,
)
from loragate.gating.statistics import max_failures_allowed
from loragate.gating.verdict import (
    EXIT_GATE_ERROR,
    EXIT_NOTHING_TO_GATE,
    compute_verdict,
    inputs_hash,
)

if TYPE_CHECKING:
    from loragate.gating.document import VerdictDocument

# Only the fixtures: a module listed here that this one already imports (items) made pytest
# warn in every project that it could not rewrite its asserts.
pytest_plugins = ("loragate.gating.fixtures",)

PLUGIN_NAME = "loragate-verdict"
# The markers, declared here and nowhere else.
MARKERS = (
    ("ship_gate", "a sample of a harness whose gate blocks a deploy"),
    ("quality_gate", "a sample of a harness whose gate lowers the overall score"),
    ("canary", "a must-not-regress task compared with the baseline"),
    ("smoke", "a deployment smoke test against the served model"),
    ("stage", "a Step 1 / Step 2 check of a pipeline artifact"),
    ("harness(name)", "the harness a gate sample belongs to"),
)
GATE_MARKERS = ("ship_gate", "quality_gate")
CHECK_MARKERS = ("stage", "smoke")
# Fixtures that need a model: items using them are deselected when no --model is given.
MODEL_FIXTURES = frozenset({"model_under_test", "generate_answer", "prompt_record",
                            "canary_record", "forgetting_record", "served_model"})
BASELINE_FIXTURES = frozenset({"baseline_model", "generate_baseline"})
# Those that use the in-process backend (served_model starts a server of its own instead).
OPENED_MODEL_FIXTURES = MODEL_FIXTURES - {"served_model"}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_value(text: str) -> int:
    """A seed every backend applies as given: llama.cpp takes an unsigned 32-bit seed and reads
    -1 (0xFFFFFFFF) as "random", so a negative seed would be recorded as reproducible while
    each run answered differently."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {value} "
                                         "(a random seed is not reproducible)")
    return value


def temperature_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {text}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    from loragate.backends.spec import concurrency_defaults, spec_help

    group = parser.getgroup("loragate", "loragate deployment verdict")
    group.addoption("--model", action="append", default=None, metavar="[NAME=]SPEC",
                    help=spec_help() + "; given several times, each candidate is judged "
                    "against the baseline, one verdict each plus a table of them "
                    "(docs/verdict.md)")
    group.addoption("--baseline", default=None, metavar="SPEC",
                    help="baseline model for the canaries (same spec forms as --model)")
    group.addoption("--samples", default=None, metavar="N",
                    help="prompts per harness (default: each harness's configured count)")
    group.addoption("--temperature", default=0.7,
                    help="sampling temperature for gate generation (default: 0.7, the plan's)")
    group.addoption("--seed", default=42,
                    help=f"generation seed, 0 to {MAX_SEED} (default: 42)")
    group.addoption("--concurrency", default=None, metavar="N",
                    help="answers generated ahead together: N sequences in one llama.cpp "
                         "batch, or N requests in flight to a server (default: "
                         "backend.concurrency, else per backend kind: "
                         f"{concurrency_defaults()}); 1 generates each answer when its item "
                         "runs")
    group.addoption("--repeats", default=1, metavar="K",
                    help="sample every gate prompt K times, with seeds seed .. seed+K-1 "
                         "(default: 1); the verdict lists the flaky prompts")
    group.addoption("--verdict-json", default=None, metavar="PATH",
                    help="write the verdict JSON here (default: <reports.dir>/verdict.json)")
    group.addoption("--verdict-html", default=None, metavar="PATH",
                    help="write loragate's standalone HTML report here "
                         "(default: <reports.dir>/report.html)")
    group.addoption("--inspect-log", default=None, metavar="DIR",
                    help="also write the verdict as Inspect eval logs, DIR/<harness>.json "
                         "(needs loragate[inspect])")
    group.addoption("--gate-confidence", choices=("point", "lower"), default="point",
                    help="pass a gate on the point estimate or on the lower bound of its 95%% "
                         "interval (Wilson for pass rates, bootstrap for F1)")
    group.addoption("--fail-fast-gates", action="store_true", default=False,
                    help="skip a harness's remaining samples once its gate cannot be met")
    group.addoption("--no-cache", action="store_true", default=False,
                    help="do not read or write the response cache")
    group.addoption("--loragate-config", default=None, metavar="PATH",
                    help="loragate config: harnesses, thresholds, backend settings (default: "
                         "the ini option loragate_config, else built-in defaults)")
    parser.addini(INI_CONFIG, "the loragate config file of this project (relative to the ini "
                              "file)", default="")


# The typed options are read as text and converted in pytest_configure, not by argparse: a
# value argparse rejects stops pytest before any plugin runs, which would leave the previous
# run's verdict in place to be read as this run's.
TYPED_OPTIONS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("samples", positive_int), ("temperature", temperature_value), ("seed", seed_value),
    ("concurrency", positive_int), ("repeats", positive_int))


def convert_typed_options(config: pytest.Config) -> list[str]:
    """Convert the typed options given as text in place; the problems, one per option."""
    problems: list[str] = []
    for name, convert in TYPED_OPTIONS:
        value = config.getoption(name, None)
        if not isinstance(value, str):
            continue
        try:
            setattr(config.option, name, convert(value))
        except argparse.ArgumentTypeError as exc:
            problems.append(f"argument --{name}: {exc}")
    return problems


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_records(metafunc)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS:
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.getoption("inspect_log", None):
        from loragate.gating.inspect_log import InspectUnavailable, inspect_log_module

        try:
            inspect_log_module()
        except InspectUnavailable as exc:
            # Before any answer is generated: the logs asked for could not be written.
            raise pytest.UsageError(f"--inspect-log: {exc}") from None
    option_problems = convert_typed_options(config)
    state = GateSession.for_config(config)
    config.stash[STASH_KEY] = state
    config.pluginmanager.register(VerdictPlugin(config, state), PLUGIN_NAME)
    if not state.active:
        if option_problems:
            raise pytest.UsageError(option_problems[0])
        return
    check_path_options(config)
    try:
        state.candidates  # noqa: B018 - parsed now, so a bad --model list is a usage error
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not hasattr(config, "workerinput"):  # the controller alone owns the outputs
        # Before the option, spec and validator checks, so a usage error there leaves no old
        # verdict behind either (only an option of pytest's own stops before any plugin).
        clear_previous_outputs(config, state)
    if option_problems:
        raise pytest.UsageError(option_problems[0])
    check_seed_range(config)
    prepare(state)


def clear_previous_outputs(config: pytest.Config, state: GateSession) -> None:
    """Check where the verdict and report will go, and remove the previous run's files there:
    a run that ends without a verdict (a usage error, Ctrl-C) must not leave the last run's
    verdict to be read as its own. A folder, a device or a pipe at either path is a usage
    error now, before any answer is generated (writing would replace a device node)."""
    json_path, html_path = verdict_paths(config, state)
    for path in (json_path, html_path):
        problem = unwritable_reason(path)
        if problem:
            raise pytest.UsageError(f"cannot write the verdict to {path}: {problem}")
    # Only the files this run writes: an earlier candidates run's verdict-NAME.json are never
    # read as this run's, and `loragate report --history` may still want them.
    for path in (json_path, html_path):
        target = path.resolve()
        if target.is_file():
            try:
                target.unlink()
            except OSError as exc:
                raise pytest.UsageError(f"cannot replace {path}: {exc.strerror or exc}"
                                        ) from None


def unwritable_reason(path: Path) -> str | None:
    """Why a whole file cannot be written at ``path`` (following a symbolic link), or None."""
    target = path.resolve()
    if target.is_dir():
        return "it is a folder"
    if target.exists() and not target.is_file():
        return "it is not a regular file (a device, pipe or socket)"
    return None


def check_seed_range(config: pytest.Config) -> None:
    last = config.getoption("seed") + config.getoption("repeats") - 1
    if last > MAX_SEED:
        raise pytest.UsageError(f"--seed plus --repeats goes past the largest seed {MAX_SEED} "
                                f"(the last repeat would use {last})")


# The options whose value may be a path. pytest picks its rootdir and ini file from the
# command line's existing paths *before* an installed plugin's options are known, so
# "--verdict-json /elsewhere/v.json" makes /elsewhere the project; "--verdict-json=PATH" does not.
PATH_OPTIONS = ("--verdict-json", "--verdict-html", "--loragate-config", "--model", "--baseline",
                "--inspect-log")


def spaced_path_options(args: Sequence[str], cwd: Path) -> list[str]:
    """The path options given as two words whose value is an existing path outside ``cwd``:
    pytest took that value for the project to run."""
    found = []
    for option, value in zip(args, args[1:], strict=False):
        if option not in PATH_OPTIONS or value.startswith("-"):
            continue
        path = Path(value) if Path(value).is_absolute() else cwd / value
        try:
            exists = path.exists()
        except OSError:
            exists = False
        if exists and not path.resolve().is_relative_to(cwd.resolve()):
            found.append(f"{option} {value}")
    return found


def check_path_options(config: pytest.Config) -> None:
    spaced = spaced_path_options(list(config.invocation_params.args),
                                 Path(config.invocation_params.dir))
    if spaced:
        fixed = ", ".join(s.replace(" ", "=", 1) for s in spaced)
        raise pytest.UsageError(
            f"loragate: write {fixed} (with '='): given as two words, pytest reads "
            f"{spaced[0].split(' ', 1)[1]} as the project to run (it chooses its rootdir and "
            f"ini file before loragate's options are known), not {config.invocation_params.dir}")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is not None:
        config.pluginmanager.unregister(plugin, PLUGIN_NAME)
    state = config.stash.get(STASH_KEY, None)
    if state is not None:
        state.close()


def prepare(state: GateSession) -> None:
    """Everything that can be checked before collection: usage errors surface here, once."""
    for candidate in state.candidates:
        check_spec(candidate.spec, "model")
    baseline = state.config.getoption("baseline")
    if baseline is not None:
        check_spec(baseline, "baseline")
    state.harnesses  # noqa: B018 - reads the config and imports the validators now


# ---------------------------------------------------------------------------------------------
# The hooks that follow the run: one object per pytest config, registered in pytest_configure


def _harness_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("harness")
    return marker.args[0] if marker and marker.args else None


def mark_gate(item: pytest.Item, harness: GateHarness | None) -> None:
    """Mark a gate item ``ship_gate`` or ``quality_gate`` as its harness's spec says: the gate
    is declared once (the registry or the config), never again in a test file, so
    ``-m ship_gate`` selects what the verdict treats as a ship gate."""
    if harness is None:
        return
    wanted = f"{harness.rule.gate}_gate"
    written = {m.name for m in item.iter_markers() if m.name in GATE_MARKERS} - {wanted}
    if written:
        raise pytest.UsageError(
            f"{item.nodeid}: marked {', '.join(sorted(written))}, but harness "
            f"{harness.name!r} is a {harness.rule.gate} gate in the config; the gate comes from "
            "the harness's spec: remove the marker")
    item.add_marker(wanted)


def _needs(item: pytest.Item, fixtures: frozenset[str]) -> bool:
    return bool(fixtures & set(getattr(item, "fixturenames", ())))


class VerdictPlugin:
    """Collects outcomes, decides gates early when asked, and writes the verdict."""

    def __init__(self, config: pytest.Config, state: GateSession) -> None:
        self.config = config
        self.state = state
        self.ahead: Any = None  # loragate.gating.ahead.AheadState when answers go ahead

    # -- collection ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Under xdist the workers collect, and a usage error there (a bad prompt or canary
        file) reached the controller as 'no tests collected', exit 5 with no message; the
        controller reads the same files first, so the error is the session's (exit 4)."""
        state = self.state
        if not (state.active and self.config.getoption("model")
                and self.config.pluginmanager.has_plugin("dsession")):
            return
        for name in state.harnesses:
            harness_records(state, name)
        if spec_for(state, "baseline"):
            for kind in CANARY_KINDS:
                canary_records(state, kind)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session,
                                      items: list[pytest.Item]) -> None:
        state = self.state
        if state.usage_errors:
            raise pytest.UsageError(state.usage_errors[0])
        if not self.config.getoption("model"):
            self._deselect_model_items(items)
        elif state.active:
            covered = {_harness_of(item) for item in items}
            for name in state.harnesses:
                if name not in covered:
                    items.extend(make_harness_items(session, state, name))
            # The canaries and the forgetting probe need a baseline to be judged against.
            if spec_for(state, "baseline"):
                for kind in CANARY_KINDS:
                    if not any(_needs(item, frozenset({f"{kind}_record"})) for item in items):
                        items.extend(make_canary_items(session, state, kind))
        if self.config.getoption("model") and state.active and not _gate_items(items):
            # Here, not in pytest_collection_finish: that runs in a `finally` and would mask a
            # usage error raised above.
            pytest.exit(nothing_to_gate_message(state), returncode=EXIT_NOTHING_TO_GATE)
        for item in items:
            if state.several and _needs(item, MODEL_FIXTURES):
                item.keywords[f"{CANDIDATE_KEYWORD}{candidate_of(item)}"] = True
            harness = _harness_of(item)
            if harness is not None:
                if state.active:
                    mark_gate(item, state.harnesses.get(harness))
                planned = state.records_for(candidate_of(item)).planned
                planned[harness] = planned.get(harness, 0) + 1
                # Keywords are serialised with reports across xdist; marker arguments are not.
                item.keywords[f"harness:{harness}"] = True
                sample_id = prompt_id(item)
                if sample_id is not None:
                    item.keywords[f"{SAMPLE_ID_KEYWORD}{sample_id}"] = True

    def _deselect_model_items(self, items: list[pytest.Item]) -> None:
        """Without ``--model`` there is nothing to gate: deselect (visibly) what needs one."""
        keep = [item for item in items if not _needs(item, MODEL_FIXTURES)]
        drop = [item for item in items if _needs(item, MODEL_FIXTURES)]
        if drop:
            self.config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Open the model and the baseline before the first test, if any test needs them."""
        state = self.state
        if not state.active or self.config.option.collectonly:
            return
        roles = [c.role for c in state.candidates
                 if any(_needs(i, OPENED_MODEL_FIXTURES) and candidate_of(i) == c.role
                        for i in session.items)]
        if spec_for(state, "baseline") and any(_needs(i, BASELINE_FIXTURES)
                                               for i in session.items):
            roles.append("baseline")
        try:
            for role in roles:
                state.backend(role)
        except GateCannotRun as exc:
            state.records.fatal.append(str(exc))
            state.records.aborted = True
            pytest.exit(f"loragate: the gate cannot run: {exc}", returncode=EXIT_GATE_ERROR)
        self._plan_ahead(session)

    def _plan_ahead(self, session: pytest.Session) -> None:
        """Generate answers ahead in windows, unless one at a time is asked. Under xdist each
        worker plans its own (see gating.ahead)."""
        from loragate.gating.ahead import concurrency_for, plan

        model = next((self.state.backends[c.role] for c in self.state.candidates
                      if c.role in self.state.backends), None)
        if model is None:
            return
        concurrency = concurrency_for(self.config, model)
        for backend in self.state.backends.values():
            # Batched in-process decoding is not token-for-token the one-at-a-time answer:
            # each is cached under its own key, and this run reuses only its own kind.
            if getattr(getattr(backend, "inner", None), "batches_in_process", False):
                backend.decoding = "batched" if concurrency > 1 else "one-at-a-time"
        if concurrency > 1:
            self.ahead = plan(session.items, concurrency)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._skip_when_decided(item)
        if self.ahead is not None:
            from loragate.gating.ahead import generate_window

            generate_window(item, self.ahead)

    def _skip_when_decided(self, item: pytest.Item) -> None:
        if not self.config.getoption("fail_fast_gates"):
            return
        harness = _harness_of(item)
        rule = self.state.rules.get(harness) if harness else None
        # F1 cannot be bounded without the remaining samples' labels: fail-fast is for pass
        # rates. Under xdist each worker counts only its own failures: a subset, so a worker
        # may skip later than a serial run would, never wrongly.
        if rule is None or rule.metric != "pass_rate":
            return
        records = self.state.records_for(candidate_of(item))
        allowed = max_failures_allowed(records.planned.get(harness, 0), rule.threshold)
        failures = records.failures.get(harness, 0)
        if failures > allowed:
            pytest.skip(f"gate decided: {harness} has {failures} failures, at most {allowed} "
                        f"allowed for threshold {rule.threshold}")

    # -- outcomes (on the controller; locally on workers too, for fail-fast) ------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = self.state.records_for(_keyword_value(report, CANDIDATE_KEYWORD))
        recorded = False
        for key, value in report.user_properties:
            if report.when != "call":
                continue
            if key == SAMPLE_KEY:
                self._add_sample(samples_from_json([value])[0], records)
                recorded = True
            elif key == CANARY_KEY:
                outcome = CanaryOutcome(**value)
                records.canaries[f"{outcome.kind}:{outcome.canary_id}"] = outcome
                recorded = True
            elif key == METRIC_KEY:
                section = records.metrics.setdefault(value["section"], {})
                section[value["name"]] = value["value"]
            elif key == COUNT_KEY:
                section = records.metrics.setdefault(value["section"], {})
                section[value["name"]] = section.get(value["name"], 0) + value["value"]
            elif key == GATE_ERROR_KEY and value not in records.fatal:
                records.fatal.append(value)
        if not recorded:
            self._record_unscored(report, records)

    @staticmethod
    def _add_sample(outcome: SampleOutcome, records: SessionRecords) -> None:
        records.samples[outcome.nodeid] = outcome
        if not outcome.passed and not outcome.error:
            failures = records.failures
            failures[outcome.harness] = failures.get(outcome.harness, 0) + 1

    def _record_unscored(self, report: pytest.TestReport, records: SessionRecords) -> None:
        """A gate item that errored or was skipped as decided becomes a sample; a canary that
        crashed is a gate error; stage and smoke checks are kept."""
        harness = _harness_keyword(report)
        if harness is not None:
            if report.skipped and "gate decided" in _reason(report):
                records.samples[report.nodeid] = SampleOutcome(
                    nodeid=report.nodeid, harness=harness, passed=False, skipped=True,
                    reason=_reason(report),
                    sample_id=_keyword_value(report, SAMPLE_ID_KEYWORD))
            elif report.failed:
                # An exception before the sample was scored: an error, never a silent drop.
                self._add_sample(SampleOutcome(
                    nodeid=report.nodeid, harness=harness, passed=False, error=True,
                    reason=f"error in {report.when}: {_reason(report)}",
                    sample_id=_keyword_value(report, SAMPLE_ID_KEYWORD)), records)
            return
        if "canary" in report.keywords:
            if report.failed:
                records.fatal.append(f"canary {report.nodeid} could not be judged "
                                     f"(error in {report.when}): {_reason(report)}")
            return
        kind = next((m for m in CHECK_MARKERS if m in report.keywords), None)
        if kind is None:
            # Any other test of the session (a project's validator tests): its failure is
            # kept, so a verdict is never "cleared" beside a failed test.
            if report.failed:
                records.checks[report.nodeid] = CheckOutcome(
                    nodeid=report.nodeid, kind="test", outcome="failed" if report.when ==
                    "call" else "error", reason=_reason(report))
            return
        if report.when == "call" or report.failed or report.skipped:
            outcome = "error" if report.failed and report.when != "call" else report.outcome
            records.checks[report.nodeid] = CheckOutcome(
                nodeid=report.nodeid, kind=kind, outcome=outcome,
                reason=_reason(report) if outcome != "passed" else "")

    # -- the verdict --------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if self.ahead is not None:
            self.ahead.close()
        if _is_worker(self.config) or not state.active:
            return
        for records in (state.records, *state.by_candidate.values()):
            if "ahead" in records.metrics:
                from loragate.gating.ahead import summarise_metrics

                records.metrics["ahead"] = summarise_metrics(records.metrics["ahead"])
        if state.several:
            self._finish_candidates(session, exitstatus)
            return
        if not (state.records.judged_anything or state.records.fatal or state.records.aborted):
            return
        document = self.document()
        try:
            write_outputs(self.config, state, document)
        except VerdictNotWritten as exc:
            # A verdict nobody can read is no verdict: the gate could not hand it on.
            self.config.get_terminal_writer().line(f"loragate: {exc}", red=True)
            session.exitstatus = EXIT_GATE_ERROR
            return
        add_junit_properties(self.config, document)
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, EXIT_GATE_ERROR):
            session.exitstatus = document.exit_status

    def _finish_candidates(self, session: pytest.Session, exitstatus: int) -> None:
        """One verdict per candidate (each with what belongs to no candidate: other tests,
        session-wide errors), then the table and the session's status by its rule."""
        from loragate.gating.candidates import candidates_document

        state = self.state
        if not (state.records.fatal or state.records.aborted
                or any(r.judged_anything for r in state.by_candidate.values())):
            return
        for candidate in state.candidates:
            records = merged_records(state.records, state.records_for(candidate.role))
            state.documents[candidate.name] = build_document(self.config, state, records,
                                                             candidate.spec)
        try:
            files = write_candidate_outputs(self.config, state)
            state.table = candidates_document(state.documents, files)
            write_candidates_table(self.config, state)
        except VerdictNotWritten as exc:
            self.config.get_terminal_writer().line(f"loragate: {exc}", red=True)
            session.exitstatus = EXIT_GATE_ERROR
            return
        for name, document in state.documents.items():
            add_junit_properties(self.config, document, prefix=f"loragate.{name}.")
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, EXIT_GATE_ERROR):
            session.exitstatus = state.table.exit_status

    def document(self) -> VerdictDocument:
        if self.state.document is None:
            self.state.document = build_document(self.config, self.state)
        return self.state.document

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from loragate.gating.report import render_text

        state = self.state
        for name, document in state.documents.items():
            terminalreporter.section(f"loragate verdict: {name}")
            for line in render_text(document.to_dict()).splitlines():
                terminalreporter.write_line(line)
        if state.table is not None:
            from loragate.gating.candidates import render_candidates_text

            terminalreporter.section("loragate candidates")
            for line in render_candidates_text(state.table).splitlines():
                terminalreporter.write_line(line)
        if state.document is None:
            return
        terminalreporter.section("loragate verdict")
        for line in render_text(state.document.to_dict()).splitlines():
            terminalreporter.write_line(line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        """Show each gate item's answer and reasons under its row in pytest-html's report."""
        from loragate.gating.report import render_sample_html

        for key, value in report.user_properties:
            if key == SAMPLE_KEY and report.when == "call":
                data.append(render_sample_html(value))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str]) -> None:
        """Put the gate table at the top of pytest-html's report."""
        from html import escape

        from loragate.gating.report import render_gate_table_html

        state = self.state
        if not state.active or _is_worker(self.config):
            return
        if state.several:
            for name, document in state.documents.items():
                prefix.append(f"<h2>{escape(name)}</h2>")
                prefix.append(render_gate_table_html(document.to_dict()))
        elif state.records.judged_anything:
            prefix.append(render_gate_table_html(self.document().to_dict()))


def _gate_items(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if _harness_of(item) is not None
            or _needs(item, frozenset({"canary_record", "forgetting_record"}))]


def nothing_to_gate_message(state: GateSession) -> str:
    """Why a session with --model has no gate item, and what to do about it."""
    source = state.settings.source_path
    where = f"the config {source}" if source else "no loragate config was found (no " \
        "--loragate-config, no 'loragate_config' ini option)"
    canaries = state.settings.canaries
    if state.harnesses:
        return (f"loragate: nothing to gate: no gate item of {where} was collected or selected "
                "(see -m / -k and the prompt files)")
    if source is None:
        return (f"loragate: nothing to gate: {where}, so there is no harness and no canary. "
                "Run `loragate init DIR` for a starter project, or add a harness "
                "(docs/harnesses.md)")
    why = "it names no harness (gates.harnesses)"
    if canaries.file is not None and not spec_for(state, "baseline"):
        why += " and its canaries need --baseline"
    elif canaries.file is None:
        why += " and no canary file (canaries.file)"
    return (f"loragate: nothing to gate: {where}; {why}. Run `loragate init DIR` for a starter "
            "project, or add a harness (docs/harnesses.md)")


SAMPLE_ID_KEYWORD = "loragate-sample-id:"
CANDIDATE_KEYWORD = "loragate-candidate:"


def _keyword_value(report: pytest.TestReport, prefix: str) -> str | None:
    for keyword in report.keywords:
        if isinstance(keyword, str) and keyword.startswith(prefix):
            return keyword[len(prefix):]
    return None


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


def merged_records(shared: SessionRecords, own: SessionRecords) -> SessionRecords:
    """A candidate's records with what belongs to every candidate (other tests, errors)."""
    metrics = {section: dict(values) for section, values in shared.metrics.items()}
    for section, values in own.metrics.items():
        metrics.setdefault(section, {}).update(values)
    return SessionRecords(planned=dict(own.planned), failures=dict(own.failures),
                          samples=dict(own.samples), canaries=dict(own.canaries),
                          checks={**shared.checks, **own.checks}, metrics=metrics,
                          fatal=[*shared.fatal, *own.fatal],
                          aborted=shared.aborted or own.aborted)


def sections_run(records: SessionRecords) -> dict[str, str]:
    """Which parts of the verdict were judged in this session: a section that did not run is
    said to be 'not run', never passed."""
    kinds = {check.kind for check in records.checks.values()}
    canary_kinds = {outcome.kind for outcome in records.canaries.values()}
    return {
        "gates": "run" if records.samples else "not run",
        "canaries": "run" if "canary" in canary_kinds else "not run",
        "forgetting": "run" if "forgetting" in canary_kinds else "not run",
        "smoke": "run" if "smoke" in kinds else "not run",
        "stages": "run" if "stage" in kinds else "not run",
    }


def build_document(config: pytest.Config, state: GateSession,
                   records: SessionRecords | None = None,
                   model_spec: str | None = None) -> VerdictDocument:
    """The verdict on one candidate: the session's only one, or (``records``, ``model_spec``)
    one of several."""
    from loragate.gating.document import Generation, ModelRef, VerdictDocument

    rules = state.rules
    settings = state.settings
    if records is None:
        records = state.records
        model_spec = state.candidates[0].spec if state.candidates else None
    judges = judge_figures(state, records) if not records.aborted else {}
    judgement = compute_verdict(
        list(records.samples.values()), rules,
        canaries=list(records.canaries.values()), checks=list(records.checks.values()),
        overall_target=settings.gates.overall_target,
        confidence=config.getoption("gate_confidence"),
        errors=list(records.fatal), require_all=settings.canaries.require_all,
        forgetting_blocks=settings.canaries.forgetting_blocks, aborted=records.aborted)
    data_hash = tree_digest(state.data_files())
    model = records.metrics.get("model", {})
    cache = records.metrics.get("cache")
    if cache:
        # Both counts always: a run that reused nothing says hits 0, not nothing.
        hits, misses = cache.setdefault("hits", 0), cache.setdefault("misses", 0)
        cache["hit_ratio"] = round(hits / (hits + misses), 4) if hits + misses else None
    return VerdictDocument(
        loragate_version=__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=ModelRef(spec=model_spec, digest=model.get("digest")),
        baseline=ModelRef(spec=spec_for(state, "baseline"),
                          digest=model.get("baseline_digest")),
        generation=Generation(temperature=config.getoption("temperature"),
                              seed=config.getoption("seed"),
                              samples=config.getoption("samples"),
                              repeats=config.getoption("repeats"),
                              cache=not config.getoption("no_cache")),
        thresholds=dict(sorted(rules.items())),
        data_hash=data_hash,
        inputs_hash=inputs_hash(
            data_hash, rules, settings.gates.overall_target,
            {"require_all": settings.canaries.require_all,
             "forgetting_blocks": settings.canaries.forgetting_blocks}),
        sections=sections_run(records),
        **dict(judgement),
        gate_errors=list(records.fatal),
        metrics={k: dict(sorted(v.items())) for k, v in sorted(records.metrics.items())},
        timings={"session_s": round(time.time() - state.started, 3)},
        samples=sorted(records.samples.values(), key=lambda s: s.nodeid),
        judges=judges,
    )


def judge_figures(state: GateSession, records: SessionRecords) -> dict[str, Any]:
    """The calibration figures of the judges behind this session's gates; a judge that cannot
    be measured is a gate error (its gate's trust is unknown), never a silent gap."""
    from loragate.harnesses.refusal_model import JudgeUnavailable
    from loragate.judges import session_calibrations

    gated = sorted({s.harness for s in records.samples.values()})
    canaries_run = any(o.kind == "canary" for o in records.canaries.values())
    try:
        judges = {name: harness.validate for name, harness in state.harnesses.items()
                  if harness.spec.judge is not None}
        found = session_calibrations(state.settings, gated, canaries_run, judges)
    except JudgeUnavailable as exc:  # its samples named it already: once is enough
        if str(exc) not in records.fatal:
            records.fatal.append(str(exc))
        return {}
    except Exception as exc:  # noqa: BLE001 - reported in the verdict, not a crash
        records.fatal.append(f"a judge's calibration could not be measured: "
                             f"{type(exc).__name__}: {exc}")
        return {}
    for name, harness in state.harnesses.items():
        judge = harness.spec.judge
        if judge is None or judge.min_agreement is None or name not in gated:
            continue
        measured = found.get(name)
        if measured is None or measured.accuracy < judge.min_agreement:
            figure = "was not measured" if measured is None else \
                f"agrees with its calibration set {measured.accuracy:.3f}"
            records.fatal.append(
                f"the judge of '{name}' {figure} < judge.min_agreement {judge.min_agreement}: "
                "its gate cannot be relied on")
    return {name: calibration.model_dump() for name, calibration in sorted(found.items())}


def add_junit_properties(config: pytest.Config, document: VerdictDocument,
                         prefix: str = "loragate.") -> None:
    """With ``--junitxml``: the verdict as properties of the test suite (each sample already
    is one testcase, its outcome in the testcase's properties); ``prefix`` names the
    candidate when there are several."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    xml.add_global_property(f"{prefix}verdict", document.verdict)
    xml.add_global_property(f"{prefix}exit_status", document.exit_status)
    xml.add_global_property(f"{prefix}overall_score", round(document.overall.score, 2))
    for name, harness in document.harnesses.items():
        xml.add_global_property(f"{prefix}{name}.score", round(harness.score, 2))
        xml.add_global_property(f"{prefix}{name}.gate_passed", harness.gate_passed)
    for reason in document.blocking_reasons + document.undecided_reasons:
        xml.add_global_property(f"{prefix}reason", reason)


def verdict_paths(config: pytest.Config, state: GateSession) -> tuple[Path, Path]:
    reports = state.settings.reports.dir
    json_path = config.getoption("verdict_json") or reports / "verdict.json"
    html_path = config.getoption("verdict_html") or reports / "report.html"
    return Path(json_path), Path(html_path)


def write_outputs(config: pytest.Config, state: GateSession, document: VerdictDocument,
                  paths: tuple[Path, Path] | None = None, candidate: str | None = None) -> None:
    from loragate.gating.report import render_html

    json_path, html_path = paths or verdict_paths(config, state)
    write_whole(json_path, document.to_json())
    write_whole(html_path, render_html(document.to_dict()))
    folder = config.getoption("inspect_log")
    if folder and candidate is not None:
        folder = str(Path(folder) / candidate)  # one log per harness and candidate
    if folder:
        from loragate.gating.inspect_log import InspectUnavailable, write_inspect_logs

        try:
            write_inspect_logs(document, Path(folder))
        except InspectUnavailable as exc:
            raise VerdictNotWritten(f"--inspect-log: {exc}") from None
        except OSError as exc:
            raise VerdictNotWritten(f"--inspect-log: cannot write {folder}: "
                                    f"{exc.strerror or exc}") from None


def write_whole(path: Path, text: str) -> None:
    """Whole or not at all (temp file + rename): a killed run or a full disk never leaves a
    truncated verdict behind."""
    from loragate.artifacts import write_text_durably

    problem = unwritable_reason(path)
    if problem:
        raise VerdictNotWritten(f"cannot write {path}: {problem}")
    try:
        # Through a symbolic link to its target: the rename would replace the link itself.
        target = path.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_durably(target, text)
    except OSError as exc:
        raise VerdictNotWritten(f"cannot write {path}: {exc.strerror or exc}") from None


def write_candidate_outputs(config: pytest.Config, state: GateSession) -> dict[str, Path]:
    """Each candidate's verdict and report, named after it beside the one-model paths
    (``verdict.json`` -> ``verdict-NAME.json``); returns the JSON paths by name."""
    from loragate.gating.candidates import candidate_paths

    json_path, html_path = verdict_paths(config, state)
    written = {}
    for name, document in state.documents.items():
        paths = candidate_paths(json_path, html_path, name)
        write_outputs(config, state, document, paths, candidate=name)
        written[name] = paths[0]
    return written


def write_candidates_table(config: pytest.Config, state: GateSession) -> None:
    """``verdict-candidates.json`` and its page ``report-candidates.html``, beside the
    candidates' own files."""
    from loragate.gating.candidates import (
        candidate_paths,
        render_candidates_html,
        table_html_path,
        table_path,
    )

    if state.table is None:
        return
    json_path, html_path = verdict_paths(config, state)
    # Each candidate's report sits beside the page (both are named after report.html).
    reports = {row.name: candidate_paths(json_path, html_path, row.name)[1].name
               for row in state.table.candidates}
    write_whole(table_path(json_path), state.table.to_json())
    write_whole(table_html_path(html_path), render_candidates_html(state.table, reports))


class VerdictNotWritten(OSError):
    """The verdict or its report could not be written: the gate's result cannot be handed on."""
