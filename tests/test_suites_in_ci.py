"""The plan's Step 1 suite (``training/test_step1_checks.py``) runs in CI on a real tiny
training run, and each of its checks can fail: the same suite on doctored stats fails the
check that reads them. (Run as a separate pytest process, the way ``loragate pipeline`` runs
it.)"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loragate.training.stats import STATS_FILE
from loragate.training.trainer import train
from tests.test_training_run import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A config file whose output_dir holds a finished tiny training run."""
    folder = tmp_path_factory.mktemp("step1")
    config = tiny_config(folder, tiny_llama_dir, max_steps=8, learning_rate=5e-3)
    config.training.loss_range = (0.0, 20.0)
    config.training.memory_budget_gb = 16
    train(config)
    path = folder / "loragate.json"
    path.write_text(config.model_dump_json(), encoding="utf-8")
    return path


def run_step1(config_path: Path, tmp_path: Path) -> dict[str, str]:
    """Each Step 1 check's outcome (passed, failed, skipped) when the suite reads the run."""
    report = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "training/test_step1_checks.py", "-q",
         "-p", "no:cacheprovider", f"--loragate-config={config_path}", f"--junitxml={report}",
         f"--verdict-json={tmp_path / 'verdict.json'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kind = next((child.tag for child in case
                     if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[case.get("name")] = {"failure": "failed", "error": "failed"}.get(kind, kind)
    return outcomes


def test_the_step1_suite_passes_on_a_finished_tiny_run(tiny_run: Path, tmp_path: Path) -> None:
    outcomes = run_step1(tiny_run, tmp_path)
    assert outcomes == {name: "passed" for name in (
        "test_run_completed", "test_no_nan_or_inf",
        "test_loss_converged_within_the_configured_range",
        "test_adapter_beats_the_base_on_the_hold_out_set", "test_grad_norms_stable",
        "test_memory_under_budget", "test_adapter_saved_as_safetensors",
        "test_adapter_loads_onto_its_base")}


def doctor(tiny_run: Path, tmp_path: Path, change: dict) -> Path:
    """A copy of the run whose training_stats.json says something else."""
    import shutil

    config = json.loads(tiny_run.read_text())
    copy = tmp_path / "run"
    shutil.copytree(config["output_dir"], copy)
    stats = json.loads((copy / STATS_FILE).read_text())
    for key, value in change.items():
        stats[key] = value
    (copy / STATS_FILE).write_text(json.dumps(stats))
    config["output_dir"] = str(copy)
    path = tmp_path / "doctored.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(("change", "check"), [
    ({"nan_detected": True}, "test_no_nan_or_inf"),
    ({"final_train_loss": 99.0}, "test_loss_converged_within_the_configured_range"),
    ({"eval_loss": 1e6}, "test_adapter_beats_the_base_on_the_hold_out_set"),
    ({"peak_memory_gb": 1e3}, "test_memory_under_budget"),
    ({"completed_steps": 3, "complete": False}, "test_run_completed"),
], ids=["nan", "loss-range", "eval-loss", "memory", "partial"])
def test_each_step1_check_fails_when_what_it_reads_is_wrong(tiny_run: Path, tmp_path: Path,
                                                            change: dict, check: str) -> None:
    outcomes = run_step1(doctor(tiny_run, tmp_path, change), tmp_path)
    assert outcomes[check] == "failed", outcomes


# -- Step 4: the smoke suite against a tiny GGUF, real Redis, ChromaDB and SQLite --------------


def test_the_smoke_suite_runs_against_a_tiny_gguf(tiny_gguf: Path, redis_url: str,
                                                  tmp_path: Path) -> None:
    """Every smoke test runs (none skipped or broken) through the served model and the real
    stores; the random-init model knows nothing, so the knowledge and tool checks fail on
    their content, and the latency figures, cold call apart, reach the verdict."""
    from loragate.config import load_config

    # The default profile with its paths made absolute (the copy lives elsewhere).
    config = json.loads(load_config(REPO / "config" / "tiny_cpu.json", check_paths=False,
                                    gating_only=True).model_dump_json())
    config["rag"] = {"chroma_dir": str(tmp_path / "chroma"),
                     "sqlite_path": str(tmp_path / "timeline.db"), "redis_url": redis_url,
                     "corpus_dir": str(REPO / "data" / "rag")}
    config["smoke"] = {"repeats": 2, "load_requests": 4, "load_concurrency": 2}
    config["backend"] = {**config.get("backend", {}), "max_tokens": 16}
    config["reports"] = {"dir": str(tmp_path / "reports")}
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps(config))
    report = tmp_path / "junit.xml"
    run = subprocess.run(
        # One sample per harness beside: a session writes a verdict (where the latency
        # figures go) only when it gated something.
        [sys.executable, "-m", "pytest", "smoke", "--samples=1", "-q", "-p",
         "no:cacheprovider", f"--model=gguf:{tiny_gguf}", f"--loragate-config={path}",
         f"--junitxml={report}",
         f"--verdict-json={tmp_path / 'verdict.json'}",
         f"--verdict-html={tmp_path / 'report.html'}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    cases = {case.get("name"): case for case in ET.parse(report).getroot().iter("testcase")}
    assert cases, run.stdout[-3000:] + run.stderr[-2000:]
    smoke = {name for name in cases if name.startswith("test_")}
    assert smoke == {"test_trained_knowledge_without_rag",
                     "test_historical_reference_through_sqlite_and_chroma",
                     "test_tool_query_with_rag_injection_yields_a_valid_call",
                     "test_bounded_concurrent_load"}
    broken = {name: child.tag for name, case in cases.items() if name in smoke
              for child in case if child.tag in ("error", "skipped")}
    assert not broken, broken
    knowledge = cases["test_trained_knowledge_without_rag"].find("failure")
    assert knowledge is not None and "knowledge keywords missing" in knowledge.get("message")
    tool = cases["test_tool_query_with_rag_injection_yields_a_valid_call"].find("failure")
    assert tool is not None and "expected a valid" in tool.get("message")
    verdict = tmp_path / "verdict.json"
    assert verdict.is_file(), run.stdout[-3000:] + run.stderr[-2000:]
    latency = json.loads(verdict.read_text())["metrics"]["latency"]
    assert latency["knowledge_n"] == 7 and latency["knowledge_cold_ttft_ms"] > 0
    assert latency["history_n"] == 1 and latency["tool_n"] == 3
