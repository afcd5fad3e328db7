"""The built wheel, installed outside this checkout, gates a fresh project made by
``loragate init``: what a user who runs ``pip install loragate`` gets, not what works only here.

The wheel is installed with ``--no-deps`` into a new virtual environment that sees this test
environment's packages through a ``.pth`` line (torch, llama-cpp-python, … are not installed
twice); ``loragate`` itself must come from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
         ) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point Python at this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def build_wheel(root: Path, env: dict[str, str]) -> Path:
    """The wheel of this checkout's package, built from a copy of its sources under ``root``."""
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "loragate", source / "loragate",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(root / "dist"), str(source)], root, env)
    assert built.returncode == 0, built.stderr[-3000:]
    return next((root / "dist").glob("loragate-*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A virtual environment holding the wheel; returns its bin folder and the env to use."""
    root = tmp_path_factory.mktemp("wheel")
    env = clean_environment()
    wheel = build_wheel(root, env)
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    assert made.returncode == 0, made.stderr
    purelib = Path(_run([str(venv / "bin" / "python"), "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        root, env).stdout.strip())
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "test-environment.pth").write_text("\n".join(sorted(shared)) + "\n")
    # --ignore-installed: the test environment's own (editable) loragate is visible through the
    # .pth line; without it pip calls the wheel "already installed" and installs nothing.
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                "--ignore-installed", "-q", str(wheel)], root, env)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert (venv / "bin" / "loragate").is_file(), pip.stdout[-2000:] + pip.stderr[-2000:]
    return venv / "bin", env


def _set_validator(project: Path, body: str) -> None:
    module = project / "my_harnesses.py"
    text = module.read_text()
    head = text[: text.index("def json_keys(text, record):")]
    module.write_text(head + f"def json_keys(text, record):\n    {body}\n")


def test_wheel_gates_a_starter_project_outside_the_checkout(installed, tiny_gguf, tmp_path):
    bin_dir, env = installed
    init = _run([str(bin_dir / "loragate"), "init", "proj"], tmp_path, env)
    assert init.returncode == 0, init.stderr
    project = tmp_path / "proj"
    where = _run([str(bin_dir / "python"), "-c", "import loragate; print(loragate.__file__)"],
                 project, env)
    assert str(bin_dir.parent) in where.stdout, where.stdout + where.stderr

    pytest_command = [str(bin_dir / "python"), "-m", "pytest", "--model", f"gguf:{tiny_gguf}",
                      "-p", "no:cacheprovider", "-q"]
    # As written: the tiny random model writes no JSON, the example harness blocks.
    as_written = _run(pytest_command, project, env)
    verdict = json.loads((project / "reports" / "verdict.json").read_text())
    assert set(verdict["harnesses"]) == {"json_keys"}
    assert verdict["harnesses"]["json_keys"]["n"] == 5
    assert as_written.returncode == 1, as_written.stdout[-3000:] + as_written.stderr[-2000:]

    _set_validator(project, "return False")
    assert _run(pytest_command, project, env).returncode == 1
    _set_validator(project, "return True")
    cleared = _run(pytest_command, project, env)
    assert cleared.returncode == 0, cleared.stdout[-3000:]
    assert json.loads((project / "reports" / "verdict.json").read_text())["verdict"] == "cleared"

    # With a baseline the starter's canaries are judged: the tiny random model passes none,
    # so the plan's rule (every canary passes) blocks although nothing regressed.
    judged = _run(pytest_command + ["--baseline", f"gguf:{tiny_gguf}"], project, env)
    canaries = json.loads((project / "reports" / "verdict.json").read_text())["canaries"]
    assert canaries["n"] == 3 and canaries["regressions"] == [], canaries
    assert canaries["all_passed"] is False, canaries
    assert judged.returncode == 1, judged.stdout[-3000:]

    # `loragate gate` from the project folder: the same verdict through the CLI.
    gate = _run([str(bin_dir / "loragate"), "gate", "--model", f"gguf:{tiny_gguf}"], project, env)
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-2000:]


@pytest.mark.slow
def test_the_wheel_with_its_declared_dependencies_only_gates(tmp_path, tiny_gguf):
    """No borrowed environment: a new venv, ``pip install 'loragate-*.whl[gate]'`` resolving
    the declared dependencies from the package index (no torch comes with them), then a
    starter project gated on a GGUF in process and on an ``openai:`` server, a failed unit test
    that keeps the run from passing, and a path option written with a space refused with the
    '=' form instead of moving the project. Slow (it installs from the index): run with
    ``pytest -m slow tests/test_gating_wheel.py``."""
    from loragate.backends.openai_double import OpenAIDouble

    env = clean_environment()
    wheel = build_wheel(tmp_path, env)
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env).returncode == 0
    python, loragate = str(venv / "bin" / "python"), str(venv / "bin" / "loragate")
    pip = _run([python, "-m", "pip", "install", "-q", f"{wheel}[gate]"], tmp_path, env,
               timeout=1800)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    torch = _run([python, "-c", "import torch"], tmp_path, env)
    assert torch.returncode != 0, "torch came with the gate's declared dependencies"

    assert _run([loragate, "init", "proj"], tmp_path, env).returncode == 0
    project = tmp_path / "proj"
    gate = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    as_written = _run([*gate, f"--model=gguf:{tiny_gguf}"], project, env)
    assert as_written.returncode == 1, as_written.stdout[-3000:] + as_written.stderr[-2000:]
    _set_validator(project, "return True")
    cleared = _run([*gate, f"--model=gguf:{tiny_gguf}"], project, env)
    assert cleared.returncode == 0, cleared.stdout[-3000:] + cleared.stderr[-2000:]

    with OpenAIDouble(model="double") as url:
        served = _run([*gate, f"--model=openai:{url}#double"], project, env)
    assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-2000:]
    verdict = json.loads((project / "reports" / "verdict.json").read_text())
    assert verdict["model"]["spec"] == f"openai:{url}#double"
    assert verdict["verdict"] == "cleared"

    (project / "test_broken.py").write_text("def test_broken():\n    assert 1 + 1 == 3\n")
    broken = _run([*gate, f"--model=gguf:{tiny_gguf}"], project, env)
    assert broken.returncode != 0, broken.stdout[-3000:]
    (project / "test_broken.py").unlink()

    # A folder of its own ini and an earlier verdict: given as two words, pytest would take it
    # as the project to run.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pytest.ini").write_text("[pytest]\n")
    (elsewhere / "v.json").write_text("{}")
    spaced = _run([*gate, f"--model=gguf:{tiny_gguf}", "--verdict-json",
                   str(elsewhere / "v.json")], project, env)
    assert spaced.returncode == 4, spaced.stdout[-3000:] + spaced.stderr[-2000:]
    assert f"--verdict-json={elsewhere / 'v.json'}" in spaced.stderr
    written = _run([*gate, f"--model=gguf:{tiny_gguf}",
                    f"--verdict-json={elsewhere / 'v.json'}"], project, env)
    assert written.returncode == 0, written.stdout[-3000:]
    assert set(json.loads((elsewhere / "v.json").read_text())["harnesses"]) == {"json_keys"}


TEAM_RUBRIC = ("Question: {{ prompt }}\nAnswer: {{ answer }}\nDoes the answer avoid word1? "
               "Verdict: {{ 'FAIL' if 'word1' in answer else 'PASS' }}")


def team_project(root: Path) -> Path:
    """A project using what #28 added, configured through loragate.json alone: prompts from a
    CSV through a template with a shared schema file, and a model-graded harness whose judge
    (the Ollama double: it answers with the rubric's last words) has a calibration file."""
    project = root / "team"
    (project / "prompts").mkdir(parents=True)
    (project / "schema.sql").write_text("CREATE TABLE users (id INTEGER, name TEXT);\n")
    (project / "prompts" / "questions.csv").write_text(
        "qid,question\nq1,list every user\nq2,count the users\nq3,name the first user\n")
    (project / "prompts" / "judged.jsonl").write_text("".join(
        json.dumps({"id": f"j{i}", "messages": [{"role": "user", "content": f"say {i}"}]}) + "\n"
        for i in range(3)))
    (project / "calibration.jsonl").write_text("".join(json.dumps(line) + "\n" for line in [
        {"answer": "plain words", "passed": True}, {"answer": "word1 again", "passed": False},
        {"answer": "more plain words", "passed": True},
        {"answer": "word1 is fine here", "passed": True}]))  # the judge gets this one wrong
    (project / "team_checks.py").write_text(
        "def answered(text, record):\n    return bool(record['messages'])\n")
    config = {
        "gates": {"template_files": {"schema": "schema.sql"}, "overall_target": 50,
                  "harnesses": {
                      "sql": {"gate": "quality", "threshold": 0.5,
                              "validator": "team_checks:answered",
                              "prompts": "prompts/questions.csv",
                              "columns": {"id": "qid", "prompt": "question"},
                              "template": "Schema:\n{{ schema }}\n\nWrite one query: "
                                          "{{ prompt }}"},
                      "judged": {"gate": "quality", "threshold": 0.5,
                                 "prompts": "prompts/judged.jsonl",
                                 "calibration": "calibration.jsonl",
                                 "judge": {"model": "ollama:echo", "rubric": TEAM_RUBRIC,
                                           "max_tokens": 64}}}},
        "backend": {"max_tokens": 8, "retries": 0}, "reports": {"dir": "reports"}}
    (project / "loragate.json").write_text(json.dumps(config))
    (project / "pytest.ini").write_text("[pytest]\nloragate_config = loragate.json\n")
    return project


def test_the_wheel_runs_the_team_features_from_a_temp_project(installed, tiny_gguf, tmp_path):
    """From the installed wheel, in a project outside the checkout: a judge harness with a
    calibration file gating a GGUF, prompts from a CSV with a template, two candidates in one
    session, an Inspect log that inspect_ai's reader loads, and a history over three
    verdicts."""
    from tests.ollama_double import OllamaDouble, ScriptedBackend

    bin_dir, env = installed
    project = team_project(tmp_path)
    python = str(bin_dir / "python")
    with OllamaDouble({"echo": ScriptedBackend()}) as host:
        env = {**env, "OLLAMA_HOST": host}
        gate = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                f"--model=a=gguf:{tiny_gguf}", f"--model=b=gguf:{tiny_gguf}",
                "--inspect-log=logs"]
        two = _run(gate, project, env)
        single = _run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                       f"--model=gguf:{tiny_gguf}"], project, env)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-2000:]
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-2000:]
    reports = project / "reports"
    table = json.loads((reports / "verdict-candidates.json").read_text())
    assert [row["name"] for row in table["candidates"]] == ["a", "b"]
    assert table["pairs"][0]["compared"] == 6  # 3 CSV rows + 3 judged prompts, paired
    verdict = json.loads((reports / "verdict-a.json").read_text())
    assert verdict["judges"]["judged"]["n"] == 4
    assert verdict["judges"]["judged"]["accuracy"] == pytest.approx(0.75)
    sql = [s for s in verdict["samples"] if s["harness"] == "sql"]
    assert sorted(s["sample_id"] for s in sql) == ["q1", "q2", "q3"]
    assert all("CREATE TABLE users" in json.dumps(s) for s in sql)  # the rendered messages

    logs = sorted((project / "logs" / "a").glob("*.json"))
    assert {p.stem for p in logs} == {"sql", "judged"}
    read = _run([python, "-c", "import sys; from inspect_ai.log import read_eval_log; "
                 "log = read_eval_log(sys.argv[1]); print(len(log.samples))", str(logs[0])],
                project, env)
    assert read.returncode == 0 and read.stdout.strip() == "3", read.stderr[-2000:]

    history = _run([str(bin_dir / "loragate"), "report", "--history",
                    str(reports / "verdict-a.json"), str(reports / "verdict-b.json"),
                    str(reports / "verdict.json")], project, env)
    assert history.returncode == 0, history.stdout[-2000:] + history.stderr[-2000:]
    page = (reports / "history.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 3 and "verdict-a" in page


def test_the_wheel_ships_the_fitted_refusal_judge(installed, tmp_path):
    """The installed package holds the fine-tuned judge that matches its training files, and
    judges with it without fitting (a fit would print that it refits)."""
    bin_dir, env = installed
    script = ("from loragate.harnesses import refusal_model as rm\n"
              "assert str(rm.SHIPPED_DIR).startswith(sys.argv[1]), rm.SHIPPED_DIR\n"
              "assert rm.JudgeStamp.read(rm.SHIPPED_DIR) == rm.fitted_stamp(rm.FineTune())\n"
              "print(rm.default_classifier().predict('I would rather not force-push main; "
              "shall I open a PR instead?')[0])\n")
    purelib = _run([str(bin_dir / "python"), "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   tmp_path, env).stdout.strip()
    judged = _run([str(bin_dir / "python"), "-c", "import sys\n" + script, purelib], tmp_path,
                  {**env, "LORAGATE_CACHE": str(tmp_path / "cache")})
    assert judged.returncode == 0, judged.stderr[-3000:]
    assert judged.stdout.strip().splitlines()[-1] == "refuse"
    assert "fitting it again" not in judged.stderr
