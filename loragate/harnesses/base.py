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

    def __post_init__(self) -> None:
        # "false" is truthy: a validator that returns a string must not count as a pass.
        if not isinstance(self.passed, bool):
            raise TypeError(f"HarnessResult.passed must be True or False, got "
                            f"{type(self.passed).__name__} {self.passed!r}")
        if not isinstance(self.reasons, list) or not all(isinstance(r, str)
                                                          for r in self.reasons):
            raise TypeError(f"HarnessResult.reasons must be a list of strings, got "
                            f"{self.reasons!r}")

    @classmethod
    def from_reasons(cls, reasons: list[str], predicted: str | None = None) -> HarnessResult:
        return cls(passed=not reasons, reasons=list(reasons), predicted=predicted)

    def summary(self) -> str:
        return "ok" if self.passed else "; ".join(self.reasons)
