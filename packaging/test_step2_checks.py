"""Step 2 checks on a packaged model: the GGUFs, their speed, their fidelity, the Modelfile.

The package is read from the session config's ``<output_dir>/package`` (``--loragate-config``,
else the ini's ``loragate_config``): its ``package.json`` manifest, written by ``loragate
package`` and read through :class:`~loragate.packaging.pipeline.PackageResult`. Without one,
every check skips and says how to make it. Figures go into the verdict through ``verdict_metrics``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.packaging.gguf_checks import (
    file_type_matches,
    inspect_gguf,
    measure_speed,
    size_ratio,
    token_agreement,
)
from loragate.packaging.modelfile import (
    CHATML_END,
    is_chatml,
    ollama_create,
    read_modelfile,
    validate_modelfile,
)
from loragate.packaging.pipeline import PackageResult, package_dir_for
from loragate.packaging.quantize import read_metadata
from loragate.training.data import hold_out_conversations

pytestmark = pytest.mark.stage
SECTION = "packaging"


@pytest.fixture(scope="module")
def packaged(loragate_settings) -> PackageResult:
    folder = package_dir_for(loragate_settings)
    result = PackageResult.read(folder)
    if result is None:
        pytest.skip(
            f"no packaged model at {folder} (no readable package.json): run "
            "`loragate package --config <config>`, or pass --loragate-config with its config"
        )
    return result


@pytest.fixture(scope="module")
def merged_dir(packaged: PackageResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The merged HF model; merged again into a temp folder when intermediates were removed."""
    if packaged.merged_dir is not None and packaged.merged_dir.is_dir():
        return packaged.merged_dir
    from loragate.packaging.merge import merge_adapter

    return merge_adapter(packaged.base_dir, packaged.adapter_dir,
                         tmp_path_factory.mktemp("remerged") / "merged")


def test_gguf_header_and_metadata_valid(packaged: PackageResult, verdict_metrics) -> None:
    for quant_type, path in packaged.quantized.items():
        info = inspect_gguf(path)
        assert info.tensor_count > 0, f"{path}: no tensors"
        assert info.architecture, f"{path}: no architecture"
        verdict_metrics.add(SECTION, f"{quant_type}_size_bytes", info.size_bytes)


def test_file_type_is_the_one_asked(packaged: PackageResult) -> None:
    wrong = [f"{path.name} is not {quant_type}" for quant_type, path in packaged.quantized.items()
             if not file_type_matches(path, quant_type)]
    assert not wrong, "; ".join(wrong)


def test_size_ratio_to_f16(packaged: PackageResult, loragate_settings, verdict_metrics) -> None:
    low, high = loragate_settings.packaging.size_ratio_range
    checked = 0
    for quant_type, path in packaged.quantized.items():
        if quant_type in ("f16", "bf16"):
            continue
        ratio = path.stat().st_size / packaged.f16_size_bytes
        if packaged.f16_gguf is not None and packaged.f16_gguf.is_file():
            assert ratio == pytest.approx(size_ratio(path, packaged.f16_gguf))
        verdict_metrics.add(SECTION, f"{quant_type}_size_ratio", round(ratio, 4))
        assert low <= ratio <= high, (
            f"{path.name}: {ratio:.3f} of the f16 size, expected within [{low}, {high}]"
        )
        checked += 1
    if not checked:
        pytest.skip("only f16 was asked for: no quantized size to compare")


def test_loads_and_generates(
    packaged: PackageResult, loragate_settings, verdict_metrics, record_property
) -> None:
    path = packaged.primary_gguf
    speed = measure_speed(path, n_threads=loragate_settings.backend.n_threads, max_tokens=32)
    record_property("load_s", round(speed.load_s, 4))
    record_property("tokens_per_s", round(speed.tokens_per_s, 2))
    verdict_metrics.add(SECTION, "load_s", round(speed.load_s, 4))
    verdict_metrics.add(SECTION, "tokens_per_s", round(speed.tokens_per_s, 2))
    assert speed.tokens >= 1, f"{path.name} generated nothing"


def test_fidelity_to_merged_model(
    packaged: PackageResult, merged_dir: Path, loragate_settings, verdict_metrics, record_property
) -> None:
    settings = loragate_settings.packaging
    eval_file = Path(loragate_settings.eval_file)
    if not eval_file.is_file():
        pytest.skip(f"no hold-out file at {eval_file}: fidelity needs its prompts")
    conversations = hold_out_conversations(
        eval_file, settings.fidelity_prompts, loragate_settings.data_args.system_prompt
    )
    result = token_agreement(merged_dir, packaged.primary_gguf, conversations,
                             n_threads=loragate_settings.backend.n_threads)
    record_property("token_agreement", round(result.agreement, 4))
    verdict_metrics.add(SECTION, "token_agreement", round(result.agreement, 4))
    verdict_metrics.add(SECTION, "token_agreement_positions", result.positions)
    assert result.agreement >= settings.fidelity_threshold, (
        f"{packaged.primary_gguf.name}: greedy next-token agreement with the merged model is "
        f"{result.agreement:.3f} over {result.positions} positions ({result.prompts} prompts), "
        f"below the threshold {settings.fidelity_threshold}"
    )


def test_modelfile_valid(packaged: PackageResult) -> None:
    modelfile = read_modelfile(packaged.modelfile)
    template = read_metadata(packaged.primary_gguf).get("tokenizer.chat_template")
    problems = validate_modelfile(
        modelfile, base_dir=packaged.modelfile.parent, chat_template=template,
        required_stops=[CHATML_END] if is_chatml(template) else [],
    )
    assert not problems, "; ".join(problems)


def test_ollama_import(packaged: PackageResult, loragate_settings) -> None:
    name = loragate_settings.packaging.ollama_name
    if not name:
        pytest.skip("packaging.ollama_name is not set")
    outcome = ollama_create(name, packaged.modelfile)
    if not outcome.created:
        pytest.skip(outcome.message)
    # Imported means the server now serves it, with the Modelfile's system prompt (Ollama
    # writes the model's SYSTEM line back into the modelfile it shows).
    import os

    import ollama

    shown = ollama.Client(host=os.environ.get("OLLAMA_HOST")).show(name)
    expected = read_modelfile(packaged.modelfile).system
    assert shown.modelfile, f"Ollama shows no modelfile for {name}"
    assert expected is None or expected.strip() in shown.modelfile, (
        f"Ollama serves {name} without its Modelfile's system prompt")
