"""The gate suites end to end on a tiny GGUF: all six harnesses and the canaries, one verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gate_suites_run_on_a_tiny_gguf_and_write_the_verdict(tiny_gguf, tmp_path):
    config = json.loads((REPO / "config" / "tiny_cpu.json").read_text())
    config.update({
        "output_dir": str(tmp_path / "out"),
        "dataset_files": [str(REPO / "data" / "guardrails.jsonl")],
        "eval_file": str(REPO / "data" / "eval.jsonl"),
    })
    config["backend"].update({"max_tokens": 24, "n_threads": 1,
                              "cache_path": str(tmp_path / "responses.sqlite")})
    config["gates"]["prompts_dir"] = str(REPO / "data" / "prompts")
    config["canaries"] = {"file": str(REPO / "data" / "canaries.jsonl")}
    (tmp_path / "config").mkdir()
    config_path = tmp_path / "config" / "e2e.json"
    config_path.write_text(json.dumps(config))
    verdict = tmp_path / "verdict.json"
    command = [sys.executable, "-m", "pytest", "gates", "canaries", "-q", "-p", "no:cacheprovider",
               "-m", "ship_gate or quality_gate or canary", "--samples", "2",
               f"--model=gguf:{tiny_gguf}", f"--baseline=gguf:{tiny_gguf}",
               "--temperature", "0", f"--loragate-config={config_path}",
               f"--verdict-json={verdict}"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert verdict.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    document = json.loads(verdict.read_text())
    assert set(document["harnesses"]) == {"pdca_schema", "pdca_template", "tron_format",
                                          "empty_constructor", "tool_success", "refusal"}
    assert all(h["n"] == 2 for h in document["harnesses"].values())
    assert document["canaries"]["n"] == 20
    assert document["canaries"]["regressions"] == []  # the same model on both sides
    assert document["model"]["digest"]
    # A random-init model writes no Web4 format: blocked, and the exit status says so.
    assert document["verdict"] == "blocked"
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "VERDICT: BLOCKED" in proc.stdout
