"""A model-graded harness: a judge model reads the answer with a rubric and says PASS or FAIL.

The rubric is a Jinja2 template (sandboxed; an unknown variable is an error) that sees the
prompt record's fields, ``answer`` (the answer judged) and ``prompt`` (the record's last user
message). The judge answers at temperature 0 with a fixed seed, so a cached judgement is the
same judgement. Its answer is parsed for the last line that says PASS or FAIL (the patterns
are configurable); an answer with neither is an error of the sample (the gate cannot decide),
never a pass or a fail. The judge's whole answer is kept as the sample's reason.

A judge is only as good as its agreement with people: the harness's ``calibration`` file of
labelled answers is judged the same way and its figures go into the verdict (``loragate
judges``); with ``judge.min_agreement`` a gate whose judge agrees less is undecided.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loragate.harnesses.base import HarnessResult

JUDGE_SEED = 0


@dataclass(frozen=True)
class JudgeSpec:
    """How a model judges a harness's answers (``gates.harnesses.<name>.judge``)."""

    model: str
    rubric: str
    pass_pattern: str = r"\bPASS\b"
    fail_pattern: str = r"\bFAIL\b"
    max_tokens: int = 256
    min_agreement: float | None = None


class JudgeAnswerError(ValueError):
    """The judge's answer says neither PASS nor FAIL."""


class ModelJudge:
    """A validator ``(text, record) -> HarnessResult`` that asks the judge model with the
    rubric. ``backend`` is the model, or a function that opens it at the first judgement."""

    def __init__(self, spec: JudgeSpec, backend: Any) -> None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        self.spec = spec
        self._backend = backend
        environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.rubric = environment.from_string(spec.rubric)
        self.passes = re.compile(spec.pass_pattern, re.IGNORECASE)
        self.fails = re.compile(spec.fail_pattern, re.IGNORECASE)

    def __call__(self, text: str, record: Mapping[str, Any]) -> HarnessResult:
        from loragate.backends.base import GenerationOptions, Message

        question = self.rubric.render(**{**record, "answer": text,
                                         "prompt": last_user_message(record)})
        options = GenerationOptions(temperature=0.0, seed=JUDGE_SEED,
                                    max_tokens=self.spec.max_tokens)
        said = self.backend.generate((Message("user", question),), options).text
        return HarnessResult(passed=self.verdict_of(said), reasons=[f"judge: {said.strip()}"])

    @property
    def backend(self) -> Any:
        if callable(self._backend) and not hasattr(self._backend, "generate"):
            self._backend = self._backend()
        return self._backend

    def verdict_of(self, said: str) -> bool:
        """The last line that says PASS or FAIL decides; a line that says both is read as
        neither (a rubric echo like "answer PASS or FAIL" is not a verdict)."""
        for line in reversed(said.strip().splitlines()):
            passed, failed = bool(self.passes.search(line)), bool(self.fails.search(line))
            if passed != failed:
                return passed
        raise JudgeAnswerError(f"the judge said neither PASS nor FAIL: {said.strip()[:200]!r}")


def last_user_message(record: Mapping[str, Any]) -> str:
    messages = record.get("messages") or []
    users = [m.get("content", "") for m in messages if isinstance(m, Mapping)
             and m.get("role") == "user"]
    return str(users[-1]) if users else str(record.get("prompt", ""))
