"""The pipeline's orchestration: pytest command lines, stage timings, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.config import load_config
from loragate.pipeline import (
    PipelineReport,
    adapter_dir_of,
    print_summary,
    pytest_command,
    write_timings,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return load_config(REPO / "config" / "tiny_cpu.json", check_paths=False)


def test_pytest_command_carries_model_baseline_config_and_verdict(config, tmp_path):
    command = pytest_command(config, model="gguf:/m.gguf", baseline="gguf:/b.gguf",
                             suites=("gates", "canaries"), markers="ship_gate",
                             verdict_json=tmp_path / "v.json", verdict_html=tmp_path / "r.html",
                             extra=["--samples", "5"])
    joined = " ".join(command)
    assert "-m pytest gates canaries -m ship_gate" in joined
    assert "--model gguf:/m.gguf" in joined and "--baseline gguf:/b.gguf" in joined
    assert f"--loragate-config {config.source_path}" in joined
    assert command[-2:] == ["--samples", "5"]


def test_stage_timings_are_written_and_summarised(tmp_path, capsys):
    report = PipelineReport()
    with report.stage("train") as timing:
        timing.reused = True
    with pytest.raises(RuntimeError), report.stage("package"):
        raise RuntimeError("boom")
    assert [t.stage for t in report.timings] == ["train", "package"]
    write_timings(tmp_path / "timings.json", report)
    payload = json.loads((tmp_path / "timings.json").read_text())
    assert payload["stages"][0]["reused"] is True
    lines: list[str] = []
    print_summary(report, None, None, out=lines.append)
    assert any("train" in line and "(reused)" in line for line in lines)


def test_adapter_dir_is_found_or_named_missing(tmp_path):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        adapter_dir_of(tmp_path)
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert adapter_dir_of(tmp_path) == tmp_path / "adapter"


def test_gate_messages_get_the_training_system_prompt():
    from loragate.gating.fixtures import with_system_prompt

    user = [{"role": "user", "content": "hi"}]
    assert with_system_prompt(user, "SYS")[0] == {"role": "system", "content": "SYS"}
    own = [{"role": "system", "content": "mine"}, *user]
    assert with_system_prompt(own, "SYS") == own


def test_collecting_the_packaging_suite_keeps_the_pypi_packaging_module():
    """The verdict run collects ./packaging/; transformers must still find packaging.version."""
    import subprocess
    import sys

    script = ("import pytest; pytest.main(['packaging', 'training', '--collect-only', '-q']); "
              "import packaging.version; print(packaging.version.__name__)")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("packaging.version")
