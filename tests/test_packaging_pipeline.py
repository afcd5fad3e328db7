"""Merge, the whole packaging pipeline and the Step 2 checks, on the tiny Llama and its adapter."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from loragate.config import LoragateConfig
from loragate.packaging import merge as merge_mod
from loragate.packaging import pipeline
from loragate.packaging.gguf_checks import (
    file_type_matches,
    inspect_gguf,
    measure_speed,
    token_agreement,
)
from loragate.packaging.merge import (
    AdapterMismatchError,
    AdapterNotFoundError,
    direct_merge_plan,
    merge_adapter,
    resolve_dtype,
)
from loragate.packaging.modelfile import read_modelfile, validate_modelfile
from loragate.packaging.pipeline import PackageResult, package
from loragate.packaging.quantize import read_metadata
from loragate.training.data import hold_out_conversations

if "fixtures.tiny_gguf" not in sys.modules:
    from fixtures.tiny_gguf import tiny_adapter_dir  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
QUANTS = ["Q8_0", "Q4_K_M", "Q5_K_M", "f16"]


def _config(tmp: Path, **packaging: object) -> LoragateConfig:
    eval_file = tmp / "eval.jsonl"
    eval_file.write_text("".join(
        json.dumps({"instruction": f"Explain step {i} of a PDCA cycle.", "output": "ok"}) + "\n"
        for i in range(4)
    ))
    return LoragateConfig(
        model_name="tiny", output_dir=tmp / "run", dataset_files=[eval_file],
        eval_file=eval_file, packaging={"quant_types": QUANTS, **packaging},
        backend={"n_threads": 1},
    )


def _adapter_for(shape: dict, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=256, **shape))
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "down_proj"]))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def packaged(tmp_path_factory, tiny_llama_dir: Path, tiny_adapter_dir: Path):
    tmp = tmp_path_factory.mktemp("package")
    config = _config(tmp)
    adapter = tmp / "run"
    shutil.copytree(tiny_adapter_dir, adapter)
    return config, package(config, adapter, base_dir=tiny_llama_dir, progress=False)


# ------------------------------------------------------------------ merge


def test_merge_applies_the_adapter(tmp_path: Path, tiny_llama_dir: Path,
                                   tiny_adapter_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir = merge_adapter(tiny_llama_dir, tiny_adapter_dir, tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file()
    assert (merged_dir / "chat_template.jinja").is_file() or json.loads(
        (merged_dir / "tokenizer_config.json").read_text()).get("chat_template")
    assert not list(merged_dir.glob("adapter_*"))
    sibling = tmp_path / "made-by-mkdir"
    sibling.mkdir()  # the umask's mode, not mkdtemp's owner-only 0700
    assert merged_dir.stat().st_mode & 0o777 == sibling.stat().st_mode & 0o777
    made_by_open = tmp_path / "made-by-open"
    made_by_open.write_text("")
    # safetensors writes through an owner-only temporary: the weights get the umask's mode too.
    for path in merged_dir.iterdir():
        assert path.stat().st_mode & 0o777 == made_by_open.stat().st_mode & 0o777, path.name

    ids = torch.tensor([[1, 200, 300, 400]])
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        base_logits = base(ids).logits
        peft_logits = PeftModel.from_pretrained(base, tiny_adapter_dir)(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged_dir)(ids).logits
    assert not torch.allclose(base_logits, merged_logits, atol=1e-3), "adapter was a no-op"
    assert torch.allclose(peft_logits, merged_logits, atol=1e-4)


def test_merge_saves_the_configured_dtype(tmp_path: Path, tiny_llama_dir: Path,
                                          tiny_adapter_dir: Path) -> None:
    from safetensors import safe_open

    assert resolve_dtype(tiny_llama_dir) == "float32"
    out = merge_adapter(tiny_llama_dir, tiny_adapter_dir, tmp_path / "m16", dtype="float16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        key = next(iter(handle.keys()))
        assert str(handle.get_tensor(key).dtype) == "torch.float16"
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_direct_merge_writes_what_peft_writes(tmp_path: Path, tiny_llama_dir: Path,
                                              tiny_adapter_dir: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file

    plan = direct_merge_plan(tiny_llama_dir, tiny_adapter_dir)
    assert plan is not None and len(plan.weights) == 2 * 7  # 2 layers, 7 projections
    direct, peft = tmp_path / "direct", tmp_path / "peft"
    direct.mkdir()
    peft.mkdir()
    merge_mod._merge_direct(tiny_llama_dir, tiny_adapter_dir, direct, dtype, plan)
    merge_mod._merge_with_peft(tiny_llama_dir, tiny_adapter_dir, peft, dtype)
    ours, theirs = load_file(direct / "model.safetensors"), load_file(peft / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:  # the same arithmetic, so the same bits
        assert ours[key].dtype == theirs[key].dtype == getattr(torch, dtype), key
        assert torch.equal(ours[key], theirs[key]), key
    config = json.loads((direct / "config.json").read_text())
    assert config["dtype"] == dtype
    assert config == {**json.loads((tiny_llama_dir / "config.json").read_text()), "dtype": dtype}


def test_direct_merge_of_a_sharded_base(tmp_path: Path, tiny_llama_dir: Path,
                                        tiny_adapter_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tiny_llama_dir).save_pretrained(
        sharded, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_llama_dir / name, sharded / name)
    plan = direct_merge_plan(sharded, tiny_adapter_dir)
    assert plan is not None and len(plan.shards) > 1
    merged = merge_adapter(sharded, tiny_adapter_dir, tmp_path / "merged")
    reference = merge_adapter(tiny_llama_dir, tiny_adapter_dir, tmp_path / "reference")
    ours: dict = {}
    for shard in plan.shards:
        ours.update(load_file(merged / shard))
    theirs = load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    index = json.loads((merged / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(t.numel() * 4 for t in ours.values())
    AutoModelForCausalLM.from_pretrained(merged)  # the index and the shards agree


def test_adapters_beyond_plain_lora_go_through_peft(tmp_path: Path, tiny_llama_dir: Path,
                                                    tiny_adapter_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = tmp_path / "patterned"
    shutil.copytree(tiny_adapter_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    # Same rank as everywhere else, so the merge must come out as the plain adapter's.
    config["rank_pattern"] = {"q_proj": config["r"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    assert direct_merge_plan(tiny_llama_dir, adapter) is None
    for key, value in [("use_dora", True), ("modules_to_save", ["lm_head"]),
                       ("init_lora_weights", "pissa"), ("bias", "all")]:
        changed = tmp_path / key
        shutil.copytree(tiny_adapter_dir, changed)
        (changed / "adapter_config.json").write_text(json.dumps({**config, key: value}))
        assert direct_merge_plan(tiny_llama_dir, changed) is None, key

    def no_direct(*args: object) -> None:
        raise AssertionError("a patterned adapter must not take the direct merge")

    monkeypatch.setattr(merge_mod, "_merge_direct", no_direct)
    via_peft = merge_adapter(tiny_llama_dir, adapter, tmp_path / "via-peft")
    monkeypatch.undo()
    plain = merge_adapter(tiny_llama_dir, tiny_adapter_dir, tmp_path / "plain")
    assert (via_peft / "model.safetensors").read_bytes() == (
        plain / "model.safetensors").read_bytes()


def test_rslora_scale(tmp_path: Path, tiny_llama_dir: Path, tiny_adapter_dir: Path) -> None:
    adapter = tmp_path / "rslora"
    shutil.copytree(tiny_adapter_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    plain = direct_merge_plan(tiny_llama_dir, adapter)
    assert plain is not None and plain.scale == config["lora_alpha"] / config["r"]
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_rslora": True}))
    rslora = direct_merge_plan(tiny_llama_dir, adapter)
    assert rslora is not None and rslora.scale == config["lora_alpha"] / config["r"] ** 0.5


def test_missing_adapter_is_named(tmp_path: Path, tiny_llama_dir: Path) -> None:
    with pytest.raises(AdapterNotFoundError, match="nowhere: adapter folder not found"):
        merge_adapter(tiny_llama_dir, tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterNotFoundError, match="no adapter_config.json"):
        merge_adapter(tiny_llama_dir, tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_adapter_of_another_shape_is_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    adapter = _adapter_for(
        {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4}, tmp_path / "other")
    with pytest.raises(AdapterMismatchError, match="made for another base") as info:
        merge_adapter(tiny_llama_dir, adapter, tmp_path / "out")
    assert "model.layers.0.mlp.down_proj" in str(info.value)
    assert "in_features is 128" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_adapter_with_more_layers_is_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    adapter = _adapter_for(
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
         "num_attention_heads": 4}, tmp_path / "deeper")
    with pytest.raises(AdapterMismatchError,
                       match=r"'model\.layers\.2\.self_attn\.q_proj' does not exist"):
        merge_adapter(tiny_llama_dir, adapter, tmp_path / "out")


# ------------------------------------------------------------------ pipeline


def test_package_writes_every_artifact(packaged) -> None:
    config, result = packaged
    assert set(result.quantized) == set(QUANTS)
    assert result.quantized["f16"] == result.f16_gguf
    for quant_type, path in result.quantized.items():
        assert path.parent == result.package_dir
        assert file_type_matches(path, quant_type)
    assert result.adapter_gguf is not None and result.adapter_gguf.is_file()
    assert result.merged_dir is not None and (result.merged_dir / "config.json").is_file()
    assert result.bytes_written > result.f16_size_bytes
    assert set(result.timings_s) >= {"merge", "convert", "quantize Q8_0", "adapter gguf"}
    leftovers = [p.name for p in result.package_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert PackageResult.read(result.package_dir) == result


def test_package_reuses_unchanged_inputs(packaged, monkeypatch: pytest.MonkeyPatch) -> None:
    config, result = packaged

    def must_not_build(*args, **kwargs):
        raise AssertionError("unchanged inputs must not be packaged again")

    monkeypatch.setattr(pipeline, "_build", must_not_build)
    again = package(config, result.adapter_dir, base_dir=result.base_dir, progress=False)
    assert again.reused and again.quantized == result.quantized

    # A change to the packaging settings is a change of inputs.
    changed = config.model_copy(deep=True)
    changed.packaging.modelfile.temperature = 0.1
    with pytest.raises(AssertionError, match="must not be packaged again"):
        package(changed, result.adapter_dir, base_dir=result.base_dir, progress=False)


def test_modelfile_round_trip(packaged) -> None:
    config, result = packaged
    modelfile = read_modelfile(result.modelfile)
    assert modelfile.from_ == "./model.Q8_0.gguf"
    assert modelfile.system == config.data_args.system_prompt
    assert modelfile.options()["stop"][0] == "<|im_end|>"
    assert modelfile.options()["num_ctx"] == config.packaging.modelfile.num_ctx
    template = read_metadata(result.primary_gguf)["tokenizer.chat_template"]
    assert validate_modelfile(modelfile, base_dir=result.package_dir, chat_template=template,
                              required_stops=["<|im_end|>"]) == []
    assert read_modelfile(result.modelfile).render() == result.modelfile.read_text()


def test_checks_on_the_package(packaged) -> None:
    config, result = packaged
    info = inspect_gguf(result.quantized["Q4_K_M"])
    assert info.architecture == "llama" and info.tensor_count == 20
    speed = measure_speed(result.primary_gguf, n_threads=1, max_tokens=8)
    assert speed.tokens >= 1 and speed.load_s > 0 and speed.tokens_per_s > 0
    conversations = hold_out_conversations(config.eval_file, 3, "Be brief.")
    assert conversations[0][0] == {"role": "system", "content": "Be brief."}
    f16 = token_agreement(result.merged_dir, result.f16_gguf, conversations, new_tokens=8,
                          n_threads=1)
    assert f16.positions == 24 and f16.prompts == 3
    # f16 differs from the fp32 merge by rounding only.
    assert f16.agreement >= 0.9


def test_removing_intermediates(tmp_path: Path, tiny_llama_dir: Path, tiny_adapter_dir: Path,
                                packaged, monkeypatch: pytest.MonkeyPatch) -> None:
    # Conversion is tested above; here the session's f16 of the same merge stands in for it.
    def reuse_f16(hf_dir: Path, out: Path, outtype: str = "f16", **kwargs) -> Path:
        return Path(shutil.copyfile(packaged[1].f16_gguf, out))

    monkeypatch.setattr(pipeline.llamacpp, "convert_hf_to_gguf", reuse_f16)
    config = _config(tmp_path, keep_intermediates=False, adapter_gguf=False)
    config.packaging.quant_types = ["Q8_0"]
    result = package(config, tiny_adapter_dir, base_dir=tiny_llama_dir, progress=False)
    assert result.merged_dir is None and result.f16_gguf is None
    assert sorted(p.name for p in result.package_dir.iterdir()) == [
        "Modelfile", "model.Q8_0.gguf", "package.json"]
    assert 0.2 < result.quantized["Q8_0"].stat().st_size / result.f16_size_bytes < 0.75


def test_step2_suite_passes_on_the_package(packaged, pytester: pytest.Pytester) -> None:
    config, result = packaged
    # The default fidelity threshold holds: the primary GGUF is Q8_0, close enough to the
    # merged model even when it is random-init (4-bit quants of a nearly flat distribution
    # are not). The size range differs for a reason of the fixture: the package holds an f16
    # GGUF too, whose ratio to f16 is 1.0 by definition, over the default 0.75 meant for
    # quantized files. Two prompts keep it fast.
    settings = {
        "model_name": "tiny", "output_dir": str(result.package_dir.parent),
        "dataset_files": [str(config.eval_file)], "eval_file": str(config.eval_file),
        "packaging": {"quant_types": QUANTS, "fidelity_prompts": 2,
                      "size_ratio_range": [0.2, 1.0]},
        "backend": {"n_threads": 1},
    }
    config_path = pytester.path / "loragate.json"
    config_path.write_text(json.dumps(settings))
    pytester.copy_example(str(ROOT / "packaging" / "test_step2_checks.py"))
    outcome = pytester.runpytest(
        "-p", "no:cacheprovider", "--import-mode=importlib", f"--loragate-config={config_path}",
        f"--verdict-json={pytester.path / 'verdict.json'}", "-q", "test_step2_checks.py",
    )
    outcome.assert_outcomes(passed=6, skipped=1)  # Ollama: no ollama_name set


@pytest.mark.parametrize("drop_system", [False, True], ids=["served", "system-dropped"])
def test_step2_ollama_import_checks_what_the_server_serves(packaged, pytester: pytest.Pytester,
                                                           monkeypatch, drop_system: bool
                                                           ) -> None:
    """The Step 2 import check against a loopback Ollama double that implements the blob
    upload, create and show calls: it passes when the server serves the Modelfile's SYSTEM
    line, and fails when the server drops it (the failing case a missing Ollama hides)."""
    from tests.ollama_double import OllamaDouble

    config, result = packaged
    # A copy of the package whose Modelfile carries a SYSTEM line (the fixture's has none,
    # and with none the check has nothing to compare).
    run = pytester.path / "run"
    shutil.copytree(result.package_dir.parent, run, ignore=shutil.ignore_patterns("merged"))
    manifest = run / result.package_dir.name / "package.json"
    manifest.write_text(manifest.read_text().replace(str(result.package_dir.parent), str(run)))
    modelfile = run / result.package_dir.name / "Modelfile"
    modelfile.write_text(modelfile.read_text() + 'SYSTEM """You answer tersely."""\n')
    settings = {
        "model_name": "tiny", "output_dir": str(run),
        "dataset_files": [str(config.eval_file)], "eval_file": str(config.eval_file),
        "packaging": {"quant_types": QUANTS, "ollama_name": "tiny-step2"},
        "backend": {"n_threads": 1},
    }
    config_path = pytester.path / "loragate.json"
    config_path.write_text(json.dumps(settings))
    pytester.copy_example(str(ROOT / "packaging" / "test_step2_checks.py"))
    with OllamaDouble({}, drop_system=drop_system) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        outcome = pytester.runpytest(
            "-p", "no:cacheprovider", "--import-mode=importlib",
            f"--loragate-config={config_path}", "-q", "-k", "ollama_import",
            "test_step2_checks.py")
    if drop_system:
        outcome.assert_outcomes(failed=1)
        outcome.stdout.fnmatch_lines(["*without its Modelfile's system prompt*"])
    else:
        outcome.assert_outcomes(passed=1)


def test_step2_suite_skips_without_a_package(pytester: pytest.Pytester, tmp_path: Path
                                             ) -> None:
    config_path = pytester.path / "loragate.json"
    config_path.write_text(json.dumps({"output_dir": str(tmp_path / "none")}))
    pytester.copy_example(str(ROOT / "packaging" / "test_step2_checks.py"))
    outcome = pytester.runpytest("-p", "no:cacheprovider", "--import-mode=importlib", "-rs",
                                 f"--loragate-config={config_path}", "test_step2_checks.py")
    outcome.assert_outcomes(skipped=7)
    outcome.stdout.fnmatch_lines(["*no packaged model at*none*loragate package*"])


# ------------------------------------------------------------------ durable outputs


@pytest.fixture
def synced_paths(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path os.fsync is called on, in order, with the renames between them."""
    import os

    events: list[Path] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(Path(f"rename:{Path(src).name}->{Path(dst).name}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_durable_replace_syncs_data_before_the_name(tmp_path: Path, synced_paths) -> None:
    from loragate.artifacts import durable_replace

    partial, final = tmp_path / ".out.partial", tmp_path / "out"
    partial.write_bytes(b"GGUF" + b"\0" * 64)
    durable_replace(partial, final)
    assert synced_paths == [partial, Path("rename:.out.partial->out"), tmp_path]
    assert final.read_bytes().startswith(b"GGUF") and not partial.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_every_package_output_reaches_the_disk_under_its_temporary_name(
        tmp_path: Path, tiny_llama_dir: Path, tiny_adapter_dir: Path, synced_paths) -> None:
    config = _config(tmp_path)
    config.packaging.quant_types = ["Q8_0"]
    result = package(config, tiny_adapter_dir, base_dir=tiny_llama_dir, progress=False)
    finals = [p for p in result.package_dir.rglob("*") if p.is_file()]
    assert len(finals) >= 6
    for final in finals:
        before_rename = [p for p in synced_paths
                         if p.name.startswith(f".{final.name}.partial")
                         or (p.name == final.name
                             and p.parent.name.startswith(f".{final.parent.name}-"))]
        assert before_rename, f"{final.relative_to(result.package_dir)} was never synced"
    assert result.package_dir in synced_paths  # the renames into it, too
