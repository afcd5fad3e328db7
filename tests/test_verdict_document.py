"""The verdict document model: the docs generated from it stay in step, what the plugin writes
is what it declares, older verdicts of the same schema still read, and a broken file is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.gating.document import (
    SCHEMA_FILE,
    VerdictDocument,
    VerdictFileError,
    json_schema,
    with_fields_table,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_docs_verdict_md_and_the_json_schema_are_in_step_with_the_model() -> None:
    page = (DOCS / "verdict.md").read_text(encoding="utf-8")
    hint = "out of step: python -m loragate.gating.document docs"
    assert with_fields_table(page) == page, f"docs/verdict.md {hint}"
    assert (DOCS / SCHEMA_FILE).read_text(encoding="utf-8") == json_schema(), \
        f"docs/{SCHEMA_FILE} {hint}"


def test_every_field_has_a_description() -> None:
    missing = [name for name, info in VerdictDocument.model_fields.items()
               if not info.description]
    assert missing == []


def _minimal() -> dict:
    return {"schema": "loragate.verdict/1", "loragate_version": "0.1.0",
            "created_at": "2026-12-02T00:00:00+00:00", "model": {"spec": "gguf:m.gguf"},
            "generation": {"temperature": 0.0, "seed": 0}, "thresholds": {},
            "data_hash": "d", "inputs_hash": "i", "harnesses": {},
            "overall": {"score": 0.0, "target": 90.0, "passed": False},
            "verdict": "blocked"}


def test_a_document_round_trips_through_the_model() -> None:
    document = VerdictDocument.from_dict(_minimal())
    again = VerdictDocument.from_dict(json.loads(document.to_json()))
    assert again == document
    assert "reverdicted_from" not in document.to_dict()  # only a re-verdict has it


RECORDINGS = sorted((REPO / "reports" / "recorded").glob("*/verdict*.json"))


@pytest.mark.parametrize("recorded", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_recorded_verdicts_read(recorded: Path) -> None:
    document = VerdictDocument.read(recorded)
    assert document.verdict in ("cleared", "blocked", "error")
    assert document.harnesses


def test_an_undeclared_field_is_refused_with_its_name() -> None:
    data = _minimal() | {"surprise": 1}
    with pytest.raises(VerdictFileError, match="field 'surprise'"):
        VerdictDocument.from_dict(data, "v.json")


@pytest.mark.parametrize(("change", "named"), [
    ({"verdict": "maybe"}, "field 'verdict'"),
    ({"overall": {"score": "high", "target": 90, "passed": False}}, "field 'overall.score'"),
    ({"schema": "loragate.verdict/2"}, "field 'schema'"),
])
def test_a_bad_field_is_named(change: dict, named: str) -> None:
    with pytest.raises(VerdictFileError, match=named):
        VerdictDocument.from_dict(_minimal() | change, "v.json")


@pytest.mark.parametrize(("verdict", "status"), [("blocked", 0), ("cleared", 1), ("error", 1)])
def test_an_exit_status_that_is_not_the_verdicts_is_refused(verdict: str, status: int) -> None:
    with pytest.raises(VerdictFileError, match=f"exit_status {status} is not the status"):
        VerdictDocument.from_dict(_minimal() | {"verdict": verdict, "exit_status": status},
                                  "v.json")
    written = VerdictDocument.from_dict(_minimal() | {"verdict": verdict})
    assert written.exit_status == {"cleared": 0, "blocked": 1, "error": 6}[verdict]


def test_the_rules_judgement_is_the_documents_and_states_its_status() -> None:
    from loragate.gating.outcomes import SampleOutcome
    from loragate.gating.verdict import GateRule, Judgement, compute_verdict

    samples = [SampleOutcome(f"t::x[{i}]", "x", i > 0, "") for i in range(4)]
    judgement = compute_verdict(samples, {"x": GateRule("ship", 0.9)})
    assert isinstance(judgement, Judgement) and judgement.verdict == "blocked"
    assert judgement.exit_status == 1
    aborted = compute_verdict([], {"x": GateRule("ship", 0.9)}, errors=["server down"],
                              aborted=True)
    assert (aborted.verdict, aborted.exit_status) == ("error", 6)
    assert aborted.blocking_reasons == [] and aborted.undecided_reasons == ["server down"]
    assert issubclass(VerdictDocument, Judgement)


def test_a_broken_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    path.write_text('{"schema": "loragate.verdict/1",\n  "verdict": }\n')
    with pytest.raises(VerdictFileError, match=r"verdict\.json:2:\d+: invalid JSON"):
        VerdictDocument.read(path)
    with pytest.raises(VerdictFileError, match="no such file"):
        VerdictDocument.read(tmp_path / "absent.json")


@pytest.mark.parametrize("field", ["samples", "harnesses", "verdict"])
def test_a_verdict_file_without_a_field_every_verdict_has_is_refused(tmp_path: Path,
                                                                      field: str) -> None:
    # A re-verdict of it would judge the model on nothing: "not evaluated", blocked.
    data = json.loads(VerdictDocument.from_dict(_minimal()).to_json())
    del data[field]
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    with pytest.raises(VerdictFileError, match=f"v.json: field '{field}' is missing"):
        VerdictDocument.read(path)
