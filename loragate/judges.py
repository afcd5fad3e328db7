"""How far each judge can be trusted: its agreement with labelled answers it was not tuned on.

A *judge* turns an answer into pass/fail (a harness validator, the canary check) or into a
label (the refusal classifier). A *calibration set* is a JSONL file of answers labelled by a
person, in other wording than anything the judge was built or trained from:

* a harness: ``{"answer": ..., "passed": true|false}`` plus the prompt record's context
  beside it (``expected``, ``tron_feedback`` ...); a classifier harness (metric ``f1``) may
  give the true class instead: ``{"answer": ..., "label": "refuse"}``;
* the canaries: ``{"id": "c06", "label": "right"|"wrong", "answer": ...}``, judged with the
  check of the canary ``id`` of the configured canary file.

:func:`calibrate` scores every line and returns a :class:`Calibration`: the confusion counts,
accuracy, Cohen's κ (scikit-learn), and for a classifier precision/recall/F1 of the positive
class. ``loragate judges`` prints them for the built-in refusal judge and for every judge the
project's config gives a calibration set; the gate session records them in the verdict next
to each gate (``judges``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

POSITIVE = "pass"


class CalibrationError(ValueError):
    """A calibration set that cannot be used; the message names the file and line."""


class Miss(BaseModel):
    """One labelled answer the judge got wrong."""

    model_config = ConfigDict(extra="forbid")
    line: int = Field(description="line of the calibration file")
    truth: str = Field(description="the label a person gave")
    judged: str = Field(description="what the judge said")
    style: str = Field("", description="the answer's class, as the set names it")


class Calibration(BaseModel):
    """A judge measured on a labelled set."""

    model_config = ConfigDict(extra="forbid")
    judge: str = Field(description="the judge: a harness name, 'canaries' or 'refusal'")
    file: str = Field(description="the calibration set")
    positive: str = Field(description="the positive class: 'pass' (right answer accepted) or "
                                      "a classifier's positive label")
    n: int = Field(description="labelled answers scored")
    tp: int = Field(description="positives judged positive")
    fp: int = Field(description="negatives judged positive (a wrong answer accepted)")
    fn: int = Field(description="positives judged negative (a right answer rejected)")
    tn: int = Field(description="negatives judged negative")
    accuracy: float = Field(description="share of answers judged as labelled")
    kappa: float | None = Field(description="Cohen's kappa between judge and labels")
    precision: float | None = Field(description="tp / (tp + fp)")
    recall: float | None = Field(description="tp / (tp + fn): positives recognised")
    specificity: float | None = Field(description="tn / (tn + fp): negatives recognised")
    f1: float | None = Field(description="F1 of the positive class")
    errors: list[str] = Field(default_factory=list,
                              description="answers the judge could not score (line: reason)")
    misses: list[Miss] = Field(default_factory=list, description="the answers judged wrongly")

    def line(self) -> str:
        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        kappa = "n/a" if self.kappa is None else f"{self.kappa:.2f}"
        text = (f"{self.judge:<18} n={self.n:<4} accuracy {pct(self.accuracy)}  "
                f"{self.positive} recognised {pct(self.recall)}  other recognised "
                f"{pct(self.specificity)}  F1 {self.f1 if self.f1 is None else round(self.f1, 3)}"
                f"  kappa {kappa}")
        return text + (f"  ({len(self.errors)} not scored)" if self.errors else "")


def measure(judge: str, file: Path, positive: str, truths: Sequence[str],
            judged: Sequence[str], lines: Sequence[int], styles: Sequence[str],
            errors: Sequence[str] = ()) -> Calibration:
    """The confusion figures of ``judged`` against ``truths`` (``positive`` is the class
    counted as positive)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = list(zip(truths, judged, strict=False))
    tp = sum(t == positive and j == positive for t, j in pairs)
    fp = sum(t != positive and j == positive for t, j in pairs)
    fn = sum(t == positive and j != positive for t, j in pairs)
    tn = sum(t != positive and j != positive for t, j in pairs)

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)
          if precision and recall else (0.0 if pairs else None))
    kappa = None
    if len(set(truths) | set(judged)) > 1:
        kappa = float(cohen_kappa_score(list(truths), list(judged)))
        kappa = None if kappa != kappa else round(kappa, 4)  # NaN: one class only
    misses = [Miss(line=line, truth=t, judged=j, style=style)
              for t, j, line, style in zip(truths, judged, lines, styles, strict=False) if t != j]
    return Calibration(judge=judge, file=str(file), positive=positive, n=len(pairs), tp=tp,
                       fp=fp, fn=fn, tn=tn, accuracy=(tp + tn) / len(pairs) if pairs else 0.0,
                       kappa=kappa, precision=precision, recall=recall,
                       specificity=ratio(tn, tn + fp), f1=f1, errors=list(errors),
                       misses=misses)


def _lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from loragate.textfiles import InputFileError, jsonl_lines

    out = []
    try:
        for line in jsonl_lines(path, "calibration set"):
            if line.error is not None:
                raise CalibrationError(f"{line.where}: {line.error}")
            if not isinstance(line.value, dict) or not isinstance(line.value.get("answer"), str):
                raise CalibrationError(f"{line.where}: a labelled answer needs a string "
                                       "field 'answer'")
            out.append((line.number, line.value))
    except InputFileError as exc:
        raise CalibrationError(str(exc)) from None
    if not out:
        raise CalibrationError(f"{path}: the calibration set is empty")
    return out


def _score_all(judge: str, path: Path, positive: str,
               score: Callable[[dict[str, Any]], tuple[str, str]]) -> Calibration:
    from loragate.harnesses.refusal_model import JudgeUnavailable

    truths, judged, numbers, styles, errors = [], [], [], [], []
    for number, record in _lines(path):
        try:
            truth, said = score(record)
        except (CalibrationError, JudgeUnavailable):
            raise  # the set or the judge as a whole, not one line: no figure to give
        except Exception as exc:  # noqa: BLE001 - a judge that fails on a line is reported
            errors.append(f"{path}:{number}: {type(exc).__name__}: {exc}")
            continue
        truths.append(truth)
        judged.append(said)
        numbers.append(number)
        styles.append(str(record.get("style", "")))
    return measure(judge, path, positive, truths, judged, numbers, styles, errors)


def calibrate_harness(name: str, validate: Callable[[str, dict[str, Any]], Any], path: Path,
                      labels: Sequence[str] = ()) -> Calibration:
    """Measure a harness's validator on ``path``. With ``labels`` (a classifier harness), a
    line may carry its true class in ``label``; else ``passed`` says what the judge should
    say."""
    from loragate.harnesses.registry import run_validator

    def score(record: dict[str, Any]) -> tuple[str, str]:
        context = {k: v for k, v in record.items() if k not in ("answer", "passed", "style")}
        if labels and record.get("label") in labels:
            context = {**context, "expected": labels[0]}
            result = run_validator(validate, record["answer"], context)
            said = result.predicted or (labels[0] if result.passed else labels[1])
            return record["label"], said
        if not isinstance(record.get("passed"), bool):
            raise CalibrationError(f"{path}: a labelled answer needs 'passed' (true/false)"
                                   + (f" or 'label' ({', '.join(labels)})" if labels else ""))
        result = run_validator(validate, record["answer"], context)
        return ("pass" if record["passed"] else "fail"), ("pass" if result.passed else "fail")

    return _score_all(name, path, labels[0] if labels else POSITIVE, score)


def calibrate_canaries(canaries: Sequence[dict[str, Any]], path: Path) -> Calibration:
    """Measure the canary check on ``path`` (``id``, ``label`` right/wrong, ``answer``)."""
    from loragate.canaries import check_canary

    by_id = {str(c["id"]): c for c in canaries}

    def score(record: dict[str, Any]) -> tuple[str, str]:
        cid = str(record.get("id"))
        if cid not in by_id:
            raise CalibrationError(f"{path}: canary id {cid!r} is not in the canary file")
        if record.get("label") not in ("right", "wrong"):
            raise CalibrationError(f"{path}: canary {cid}: 'label' must be 'right' or 'wrong'")
        passed = check_canary(by_id[cid], record["answer"]).passed
        return ("pass" if record["label"] == "right" else "fail"), ("pass" if passed else "fail")

    return _score_all("canaries", path, POSITIVE, score)


def calibrate_refusal(path: Path | None = None, judge: str = "model") -> Calibration:
    """The built-in refusal judge on its held-out set (or ``path``); ``judge="rules"``
    measures the form rules alone."""
    from loragate.harnesses import refusal, refusal_model

    path = path or refusal_model.HELDOUT_FILE
    lines = _lines(path)
    for number, record in lines:
        if record.get("label") not in refusal.LABELS:
            raise CalibrationError(f"{path}:{number}: 'label' must be 'refuse' or 'comply'")
    judged = refusal.classify_many([record["answer"] for _, record in lines], judge)
    name = "refusal" if judge == "model" else "refusal (rules)"
    return measure(name, path, "refuse", [record["label"] for _, record in lines], judged,
                   [number for number, _ in lines],
                   [str(record.get("style", "")) for _, record in lines])


# -- the project's judges ----------------------------------------------------------------------


def project_calibrations(config: Any) -> list[Calibration]:
    """Every judge the config gives a calibration set: its harnesses and its canaries."""
    found: list[Calibration] = []
    for name, spec in config.gates.specs().items():
        if spec.calibration is None:
            continue
        found.append(calibrate_harness(name, validator_of(spec, config), spec.calibration,
                                       spec.labels))
    canaries = config.canaries
    if canaries.calibration is not None and canaries.file is not None:
        from loragate.canaries import load_canaries

        found.append(calibrate_canaries(load_canaries(canaries.file), canaries.calibration))
    return found


def _measure_harness(spec: Any, path: Path, config: Any) -> Calibration:
    return calibrate_harness(spec.name, validator_of(spec, config), path, spec.labels)


def validator_of(spec: Any, config: Any) -> Callable[[str, Any], Any]:
    """What judges harness ``spec`` outside a gate session (``loragate judges``, ``check``,
    ``report --rejudge``): its judge model, opened with the config's backend settings, or
    its validator, imported from the project's root. (A session opens judges itself, through
    its response cache.)"""
    if spec.judge is None:
        from loragate.harnesses.registry import load_validator

        return load_validator(spec.validator, root=config.root)
    from loragate.backends.spec import open_backend
    from loragate.harnesses.model_judge import ModelJudge

    return ModelJudge(spec.judge, open_backend(spec.judge.model, config.backend))


def _judge_code_digest() -> str:
    """The judges' own source: a calibration is reused only while the code that judged is the
    same."""
    from loragate.artifacts import files_digest

    here = Path(__file__).resolve().parent
    # The refusal judge's fitted weights judge as much as its code does.
    return files_digest(sorted([here / "canaries.py", *(here / "harnesses").glob("*.py"),
                                *(here / "harnesses" / "data" / "refusal_judge").glob("*")]))


def cached_calibration(key_parts: Sequence[str], measure_it: Callable[[], Calibration]) \
        -> Calibration:
    """``measure_it()``, cached under the loragate cache by ``key_parts`` and the judges' code;
    a cache that cannot be read or written only costs a re-measure."""
    from loragate.artifacts import cache_root, json_digest, write_text_durably

    key = json_digest([*key_parts, _judge_code_digest()])[:24]
    path = cache_root() / "judges" / f"calibration-{key}.json"
    try:
        return Calibration.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        pass
    result = measure_it()
    if result.errors:
        # Lines the judge failed on may pass another time (a judge model's server back up):
        # a figure with gaps is reported, never reused.
        return result
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_durably(path, result.model_dump_json())
    except OSError:
        pass
    return result


def session_calibrations(config: Any, harnesses: Sequence[str], canaries_run: bool,
                         validators: Mapping[str, Callable[[str, Any], Any]] | None = None
                         ) -> dict[str, Calibration]:
    """The calibration figures a gate session records: for each gated harness with a
    calibration set (the built-in refusal judge always has its held-out set), and for the
    canary check when canaries ran and a calibration set is configured."""
    from dataclasses import asdict

    from loragate.artifacts import file_digest, json_digest

    found: dict[str, Calibration] = {}
    for name in harnesses:
        if name not in config.gates.harnesses:
            continue
        spec = config.gates.spec(name)
        path = spec.calibration
        if path is None and name == "refusal" and spec.builtin:
            from loragate.harnesses.refusal_model import HELDOUT_FILE

            path = HELDOUT_FILE
        if path is None:
            continue
        if spec.judge is not None and validators and name in validators:
            # A model judge: measured through the session's judge (its answers are cached
            # like every generation), keyed by what it is (model, rubric, patterns).
            judge = validators[name]
            found[name] = cached_calibration(
                [name, json_digest(asdict(spec.judge)), file_digest(path)],
                partial(calibrate_harness, name, judge, path, spec.labels))
            continue
        found[name] = cached_calibration(
            [name, spec.validator, file_digest(path)],
            partial(_measure_harness, spec, path, config))
    canaries = config.canaries
    if canaries_run and canaries.calibration is not None and canaries.file is not None:
        from loragate.canaries import load_canaries

        found["canaries"] = cached_calibration(
            ["canaries", file_digest(canaries.file), file_digest(canaries.calibration)],
            lambda: calibrate_canaries(load_canaries(canaries.file), canaries.calibration))
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="also write the figures as JSON")
    parser.add_argument("--misses", action="store_true",
                        help="list each answer a judge got wrong (file line and class)")
    parser.add_argument("--builtin-only", action="store_true",
                        help="measure the built-in refusal judge only, not the project's")


def project_config(given: Path) -> Path | None:
    """The config whose judges to measure: the one given, else a project's loragate.json in
    the current folder; None when there is neither (the built-in judges only)."""
    from loragate.config import DEFAULT_CONFIG
    from loragate.gating.starter import CONFIG_NAME

    if given.is_file() or given != DEFAULT_CONFIG:
        return given
    own = Path(CONFIG_NAME)
    return own if own.is_file() else None


def uses_builtin_refusal(config: Any) -> bool:
    spec = config.gates.harnesses.get("refusal")
    return spec is not None and config.gates.spec("refusal").builtin


def run(args: argparse.Namespace) -> int:
    from loragate.config import load_config
    from loragate.exit_codes import ExitCode
    from loragate.harnesses.refusal_model import JudgeUnavailable

    results: list[Calibration] = []
    config_path = project_config(Path(args.config))
    try:
        config = None if args.builtin_only or config_path is None else load_config(
            config_path, check_paths=False, gating_only=True)
        if config is None or uses_builtin_refusal(config):
            # The refusal judge is measured where it gates, not in every project.
            print("loragate judges: measuring the built-in refusal judge on its held-out set",
                  file=sys.stderr)
            results.append(calibrate_refusal(judge="rules"))
            results.append(calibrate_refusal())
        if config is not None:
            results += project_calibrations(config)
    except (CalibrationError, JudgeUnavailable) as exc:
        print(f"loragate judges: {exc}", file=sys.stderr)
        return ExitCode.GATE_ERROR
    if not results:
        print(f"loragate judges: no judge of {config_path} has a calibration set; declare one "
              "with gates.harnesses.<name>.calibration or canaries.calibration "
              "(docs/judges.md)")
    for result in results:
        print(result.line())
        if args.misses:
            styles = Counter(m.style for m in result.misses)
            for miss in result.misses:
                print(f"    {result.file}:{miss.line}: labelled {miss.truth}, judged "
                      f"{miss.judged} ({miss.style})")
            if styles:
                print("    by class: " + ", ".join(f"{s or '-'} {n}" for s, n in
                                                   styles.most_common()))
        for error in result.errors:
            print(f"    not scored: {error}")
    if args.json:
        from loragate.artifacts import write_text_durably

        try:
            write_text_durably(args.json, json.dumps([r.model_dump() for r in results],
                                                     indent=2) + "\n")
        except OSError as exc:
            print(f"loragate judges: cannot write {args.json}: {exc}", file=sys.stderr)
            return ExitCode.GATE_ERROR
    return ExitCode.CLEARED
