"""The result type every harness validator returns (the harnesses themselves are declared in
:mod:`loragate.harnesses.registry`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HarnessResult:
    """Outcome of one validator on one answer.

    ``reasons`` lists every rule the text broke (empty when it passed); ``predicted`` is
    set by classifier harnesses (``refusal``: "refuse" or "comply").
    """

    passed: bool
    reasons: list[str] = field(default_factory=list)
    predicted: str | None = None

    @classmethod
    def from_reasons(cls, reasons: list[str], predicted: str | None = None) -> HarnessResult:
        return cls(passed=not reasons, reasons=list(reasons), predicted=predicted)

    def summary(self) -> str:
        return "ok" if self.passed else "; ".join(self.reasons)
