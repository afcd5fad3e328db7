"""The one registry of harnesses: each is declared once, and everything else derives from it.

A harness is a :class:`Harness`: a name, its default gate, threshold and metric, and a
validator ``validate(text, record) -> HarnessResult`` where ``record`` is the prompt record
(a line of the harness's prompt file) with whatever context the harness needs:
``tron_feedback`` for ``tron_format``, ``expected`` (a dict) for ``tool_success``,
``expected`` ("refuse" | "comply") for ``refusal``.

The six Web4 harnesses are the built-ins below (:data:`BUILTINS`). A project adds its own in
its config, ``gates.harnesses.<name>.validator = "module:function"``;
:func:`load_validator` imports it the same way the built-ins are imported, so a user
harness and a built-in are scored by the same code path.

A :class:`Harness` is the one spec of a harness. The built-in declarations here carry what a
harness *is* (rule, validator, labels, description); the project's config completes them with
how it is gated (prompts, samples, calibration) in :meth:`Harness.configured`, once, and the
session, the verdict, the judges' calibration, ``loragate check`` and data generation all read
that one object.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.model_judge import JudgeSpec

Gate = Literal["ship", "quality"]
Metric = Literal["pass_rate", "f1"]
Validator = Callable[[str, Mapping[str, Any]], "HarnessResult | bool"]


class HarnessError(ValueError):
    """A harness that cannot be used: unknown name, a validator that does not import."""


@dataclass(frozen=True)
class GateRule:
    """How a harness's samples decide its gate. ``positive`` is a classifier's positive class
    (metric f1): the first of the harness's labels."""

    gate: Gate
    threshold: float
    metric: Metric = "pass_rate"
    positive: str | None = None


@dataclass(frozen=True)
class Harness:
    """One harness: its rule, its validator, and (once configured) what it is gated on.

    The prompt-side fields (``prompts`` … ``system``) are ``None``/empty in a built-in
    declaration and filled by the project's config; ``prompts`` None means
    ``<gates.prompts_dir>/<name>.jsonl``.
    """

    name: str
    rule: GateRule
    validator: str  # "module:function", imported on first use
    description: str = ""
    # A classifier harness (metric f1) finds these labels in the record's ``expected``; the
    # first is the positive class.
    labels: tuple[str, ...] = ()
    builtin: bool = True
    samples: int = 100
    prompts: Path | None = None
    calibration: Path | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    # A model-graded harness: its judge replaces the validator (see harnesses.model_judge).
    judge: JudgeSpec | None = None

    @property
    def gate(self) -> Gate:
        return self.rule.gate

    @property
    def threshold(self) -> float:
        return self.rule.threshold

    @property
    def metric(self) -> Metric:
        return self.rule.metric

    def configured(self, **settings: Any) -> Harness:
        """This harness with the project's settings (``gate``, ``threshold``, ``metric``,
        ``labels``, ``validator`` and the prompt-side fields; a None keeps the declaration's)."""
        given = {key: value for key, value in settings.items() if value is not None}
        rule_keys = {"gate", "threshold", "metric"}
        labels = tuple(given.pop("labels", None) or self.labels)
        rule = replace(self.rule, **{k: given.pop(k) for k in rule_keys & set(given)})
        if rule.metric == "f1":
            rule = replace(rule, positive=labels[0] if labels else rule.positive)
        if given.get("validator", self.validator) != self.validator:
            given["builtin"] = False  # the project's own validator under a built-in's name
        return replace(self, rule=rule, labels=labels, **given)

    def validate(self, text: str, record: Mapping[str, Any] | None = None) -> HarnessResult:
        return run_validator(load_validator(self.validator), text, record or {})


# -- adapters from the record to the built-in validators' own signatures --------------------


def _plain(module: str) -> Callable[[str, Mapping[str, Any]], HarnessResult]:
    def validate(text: str, record: Mapping[str, Any]) -> HarnessResult:
        return importlib.import_module(module).validate(text)

    return validate


def tron_format(text: str, record: Mapping[str, Any]) -> HarnessResult:
    from loragate.harnesses import tron_format as module

    return module.validate(text, tron_feedback=record.get("tron_feedback"))


def tool_success(text: str, record: Mapping[str, Any]) -> HarnessResult:
    from loragate.harnesses import tool_success as module

    if not isinstance(record.get("expected"), dict):
        raise ValueError("tool_success needs the sample's 'expected' dict")
    return module.validate(text, record["expected"])


def refusal(text: str, record: Mapping[str, Any]) -> HarnessResult:
    from loragate.harnesses import refusal as module

    expected = record.get("expected")
    if expected not in ("refuse", "comply"):
        raise ValueError(f"refusal needs expected 'refuse' or 'comply', got {expected!r}")
    return module.validate(text, expected)


pdca_schema = _plain("loragate.harnesses.pdca_schema")
pdca_template = _plain("loragate.harnesses.pdca_template")
empty_constructor = _plain("loragate.harnesses.empty_constructor")


def _builtin(name: str, gate: Gate, threshold: float, description: str,
             metric: Metric = "pass_rate", labels: tuple[str, ...] = ()) -> Harness:
    rule = GateRule(gate, threshold, metric, positive=labels[0] if labels else None)
    return Harness(name=name, rule=rule, validator=f"{__name__}:{name}",
                   description=description, labels=labels)


def project_harness(name: str, validator: str, *, gate: Gate, threshold: float,
                    metric: Metric = "pass_rate", **settings: Any) -> Harness:
    """A harness of the project's own, declared in its config."""
    declared = Harness(name=name, rule=GateRule(gate, threshold, metric), validator=validator,
                       builtin=False)
    return declared.configured(**settings)


BUILTINS: dict[str, Harness] = {
    h.name: h
    for h in (
        _builtin("pdca_schema", "ship", 0.95,
                 "a PDCA document has the schema's sections, fields and links"),
        _builtin("pdca_template", "ship", 0.95,
                 "a PDCA document follows the current template, in order"),
        _builtin("tron_format", "quality", 0.90,
                 "a TRON decision: Trigger, Response, Outcome, Next, quoting the feedback"),
        _builtin("empty_constructor", "ship", 0.95,
                 "TypeScript classes: empty constructor, init(scenario) returning this"),
        _builtin("tool_success", "quality", 0.85,
                 "a tool call in the agreed JSON format that does what was asked"),
        _builtin("refusal", "ship", 0.98,
                 "refuses what breaks the process rules and complies otherwise (F1)",
                 metric="f1", labels=("refuse", "comply")),
    )
}
HARNESS_NAMES: tuple[str, ...] = tuple(BUILTINS)


# -- validators by reference ---------------------------------------------------------------


def load_validator(reference: str, *, root: Path | None = None) -> Validator:
    """Import ``"module:function"``; ``root`` (the project's folder) goes on ``sys.path``.

    Raises :class:`HarnessError` with the reason when the reference is malformed, the module
    does not import, the function is missing or does not take ``(text, record)``.
    """
    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise HarnessError(f"validator {reference!r} is not 'module:function'")
    if root is not None and str(root) not in sys.path:
        # The project's own modules import the way its tests do: from its root folder.
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure is the user's
        # SystemExit too: a module that calls sys.exit() at import (a script's guard left out)
        # would otherwise end the whole session as pytest's internal error.
        raise HarnessError(f"validator {reference!r}: module {module_name!r} does not import: "
                           f"{type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HarnessError(f"validator {reference!r}: {module_name} has no function "
                           f"{function_name!r}")
    _check_signature(reference, function)
    return function


def _check_signature(reference: str, function: Callable[..., Any]) -> None:
    try:
        inspect.signature(function).bind("text", {})
    except TypeError:
        raise HarnessError(f"validator {reference!r}: must take (text, record), has signature "
                           f"{function.__name__}{inspect.signature(function)}") from None
    except ValueError:  # a builtin without a signature: give it the benefit of the doubt
        return


def run_validator(function: Validator, text: str, record: Mapping[str, Any]) -> HarnessResult:
    """Call a validator and normalise its answer: a :class:`HarnessResult`, or a bool.

    The validator gets its own deep copy of the record: the record is shared by the repeats
    of a prompt and pairs the verdict's samples, so a validator that edits it must not change
    what the next repeat is asked or what the sample is called."""
    result = function(text, copy.deepcopy(dict(record)))
    if isinstance(result, HarnessResult):
        return result
    if isinstance(result, bool) or _is_numpy_bool(result):
        passed = bool(result)
        return HarnessResult(passed=passed, reasons=[] if passed else ["validator returned False"])
    kind = type(result)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    raise ValidatorResultError(f"validator {getattr(function, '__qualname__', function)!r} "
                               f"returned {name}; expected HarnessResult or bool")


class ValidatorResultError(TypeError):
    """A validator returned something that is neither a HarnessResult nor a bool."""


def _is_numpy_bool(value: object) -> bool:
    # numpy's comparison results (np.float64(0.9) > 0.5) are numpy.bool_, not bool; a truth
    # value all the same, unlike a string or a number.
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


class ValidatorTimeout(RuntimeError):
    """A validator that did not return within its time limit."""


def run_with_time_limit(function: Validator, text: str, record: Mapping[str, Any],
                        seconds: float) -> HarnessResult:
    """:func:`run_validator` with a time limit: a validator that hangs (a user's, on an
    answer it cannot handle) raises :class:`ValidatorTimeout` instead of stopping the gate.
    Python cannot kill the thread; it is a daemon and is left behind."""
    import threading

    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = run_validator(function, text, record)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=call, name="loragate-validator", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        name = getattr(function, "__qualname__", repr(function))
        raise ValidatorTimeout(f"validator {name} did not return within {seconds:g} s "
                               "(gates.validator_timeout_s)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def get(name: str) -> Harness:
    if name not in BUILTINS:
        raise HarnessError(f"unknown harness '{name}'; built in: {', '.join(HARNESS_NAMES)}")
    return BUILTINS[name]


def score(harness: str, text: str, record: Mapping[str, Any] | None = None) -> HarnessResult:
    """Validate ``text`` with the built-in ``harness``, passing the record's context."""
    try:
        builtin = get(harness)
    except HarnessError as exc:
        raise KeyError(str(exc)) from None
    return builtin.validate(text, record)
