"""Step 2 as one call: adapter → merged HF folder → f16 GGUF → quantized GGUFs → adapter GGUF →
Modelfile (→ ``ollama create`` when asked).

Everything goes to ``<output_dir>/package/``. A manifest (``package.json``) written last records
the hash of the inputs (packaging settings, adapter bytes, base fingerprint, converter
version) and the files made; a later call with the same inputs and all files present reuses
them instead of rebuilding.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loragate.artifacts import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    combine_digests,
    file_digest,
    json_digest,
    model_folder_fingerprint,
    reusable,
    write_text_durably,
)
from loragate.packaging import llamacpp
from loragate.packaging.merge import check_adapter_files
from loragate.packaging.stale import remove_stale_temporaries

PACKAGE_DIRNAME = "package"
MANIFEST = "package.json"
MANIFEST_VERSION = 1
MERGED_DIRNAME = "merged"
MODEL_STEM = "model"
ADAPTER_STEM = "adapter"
MODELFILE = "Modelfile"


class PackageResult(BaseModel):
    """``package.json``: what packaging made from which inputs. Written last by :func:`package`
    and read back by the same model (:meth:`read`), by the pipeline and by the Step 2 checks."""

    model_config = ConfigDict(extra="forbid")

    version: int = MANIFEST_VERSION
    package_dir: Path
    base_dir: Path
    adapter_dir: Path
    inputs_hash: str
    outtype: str
    f16_gguf: Path | None
    f16_size_bytes: int
    merged_dir: Path | None
    quantized: dict[str, Path]
    adapter_gguf: Path | None
    modelfile: Path
    timings_s: dict[str, float] = {}
    bytes_written: int = 0
    # Of this call, not of the package: never written.
    reused: bool = Field(default=False, exclude=True)
    ollama_message: str | None = Field(default=None, exclude=True)

    @property
    def primary_gguf(self) -> Path:
        """The GGUF the Modelfile names: the first configured quant type."""
        return next(iter(self.quantized.values()))

    def write(self) -> Path:
        return write_text_durably(self.package_dir / MANIFEST,
                                  self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, package_dir: Path) -> PackageResult | None:
        """The result recorded in ``package_dir``; None when there is none, it is unreadable or
        of another version (then the package is rebuilt)."""
        try:
            result = cls.model_validate_json((Path(package_dir) / MANIFEST).read_bytes())
        except (OSError, ValueError, ValidationError):
            return None
        return result if result.version == MANIFEST_VERSION else None


def package_dir_for(config: Any) -> Path:
    return Path(config.output_dir) / PACKAGE_DIRNAME


def packaging_inputs_hash(config: Any, adapter_dir: Path, base_dir: Path) -> str:
    settings = {
        "packaging": config.packaging.model_dump(mode="json"),
        "system_prompt": config.data_args.system_prompt,
        "converter": llamacpp.SDIST_SHA256,
    }
    return combine_digests(json_digest(settings),
                           *(file_digest(Path(adapter_dir) / name)
                             for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)),
                           model_folder_fingerprint(Path(base_dir)))


def is_up_to_date(previous: PackageResult | None, inputs_hash: str) -> bool:
    if previous is None:
        return False
    needed = [previous.modelfile, *previous.quantized.values()]
    if previous.adapter_gguf:
        needed.append(previous.adapter_gguf)
    return reusable(previous.inputs_hash, inputs_hash, needed)


def package(
    config: Any,
    adapter_dir: Path | None = None,
    *,
    base_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    ollama: bool = False,
) -> PackageResult:
    """Package the adapter in ``adapter_dir`` (default: ``config.output_dir``).

    Checks first what would fail late (the adapter files, a system prompt the Modelfile cannot
    hold), and removes what killed runs left in the package folder.
    """
    check_modelfile_system(config)
    adapter_dir = Path(adapter_dir or config.output_dir)
    check_adapter_files(adapter_dir)
    if base_dir is None:
        from loragate.base_model import resolve_base_model

        base_dir = resolve_base_model(config)
    base_dir = Path(base_dir)
    out = package_dir_for(config)
    remove_stale_temporaries(out)
    inputs_hash = packaging_inputs_hash(config, adapter_dir, base_dir)
    previous = PackageResult.read(out)
    if not force and is_up_to_date(previous, inputs_hash):
        assert previous is not None
        previous.reused = True
        result = previous
    else:
        result = _build(config, adapter_dir, base_dir, out, inputs_hash, progress)
    name = config.packaging.ollama_name
    if ollama and name:
        from loragate.packaging.modelfile import ollama_create

        result.ollama_message = ollama_create(name, result.modelfile).message
    return result


def check_modelfile_system(config: Any) -> None:
    """Refuse a system prompt the Modelfile cannot hold before any merge or convert work.

    It is found only when the Modelfile is written, the last step, minutes (hours for a 7B
    model) after the merge; the error names the config field that supplied the prompt.
    """
    from loragate.config import ConfigError
    from loragate.packaging.modelfile import unquotable

    configured = config.packaging.modelfile.system
    field, text = ("packaging.modelfile.system", configured) if configured is not None \
        else ("data_args.system_prompt", config.data_args.system_prompt)
    problem = None if text is None else unquotable(text)
    if problem is not None:
        source = getattr(config, "source_path", None)
        where = f"{source}: " if source else ""
        hint = "reword it" + (", or set packaging.modelfile.system to a prompt without them"
                              if field == "data_args.system_prompt" else "")
        raise ConfigError(f"{where}field '{field}': the system prompt {problem}; {hint}")


def _build(
    config: Any, adapter_dir: Path, base_dir: Path, out: Path, inputs_hash: str, progress: bool
) -> PackageResult:
    from tqdm import tqdm

    from loragate.packaging.merge import merge_adapter
    from loragate.packaging.quantize import quantize_gguf, quantized_name

    settings = config.packaging
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # what follows no longer matches it
    quant_types = list(dict.fromkeys(settings.quant_types))
    steps = ["merge", "convert", *[f"quantize {q}" for q in quant_types if q != settings.outtype]]
    steps += ["adapter gguf"] if settings.adapter_gguf else []
    steps += ["modelfile"]
    timings: dict[str, float] = {}
    bar = tqdm(total=len(steps), desc="package", unit="step", disable=not progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        timings[name] = time.perf_counter()

    def done(name: str) -> None:
        timings[name] = time.perf_counter() - timings[name]
        bar.update(1)

    try:
        # Each converter process starts one step ahead, so its imports (seconds on a small
        # machine) run while the merge, or the quantize, is under way (llamacpp.prestarted).
        step("merge")  # starting the converter process counts as the merge's time
        with llamacpp.prestarted(
            llamacpp.HF_CONVERTER, config.cache_dir, warm_dir=base_dir
        ) as converter:
            merged = merge_adapter(
                base_dir, adapter_dir, out / MERGED_DIRNAME, settings.merge_dtype
            )
            done("merge")
            step("convert")
            f16 = llamacpp.convert_hf_to_gguf(
                merged, out / f"{MODEL_STEM}.{settings.outtype}.gguf", settings.outtype,
                cache_dir=config.cache_dir, process=converter,
            )
            done("convert")
        with contextlib.ExitStack() as stack:
            lora_converter = stack.enter_context(llamacpp.prestarted(
                llamacpp.LORA_CONVERTER, config.cache_dir, warm_dir=base_dir
            )) if settings.adapter_gguf else None
            quantized: dict[str, Path] = {}
            for quant_type in quant_types:
                if quant_type == settings.outtype:
                    quantized[quant_type] = f16  # f16 as is: the converter's output
                    continue
                step(f"quantize {quant_type}")
                quantized[quant_type] = quantize_gguf(
                    f16, out / quantized_name(MODEL_STEM, quant_type), quant_type,
                    n_threads=config.backend.n_threads or 0,
                )
                done(f"quantize {quant_type}")
            adapter_gguf = None
            if settings.adapter_gguf:
                step("adapter gguf")
                adapter_gguf = llamacpp.convert_lora_to_gguf(
                    adapter_dir, base_dir, out / f"{ADAPTER_STEM}.{settings.outtype}.gguf",
                    settings.outtype, cache_dir=config.cache_dir, process=lora_converter,
                )
                done("adapter gguf")
        step("modelfile")
        first = next(iter(quantized.values()))
        modelfile = write_modelfile(config, merged, first, out / MODELFILE)
        done("modelfile")
    finally:
        bar.close()

    result = PackageResult(
        package_dir=out, base_dir=base_dir, adapter_dir=adapter_dir, inputs_hash=inputs_hash,
        outtype=settings.outtype, f16_gguf=f16, f16_size_bytes=f16.stat().st_size,
        merged_dir=merged, quantized=quantized, adapter_gguf=adapter_gguf, modelfile=modelfile,
        timings_s={k: round(v, 3) for k, v in timings.items()},
    )
    result.bytes_written = _bytes_written(result)
    if not settings.keep_intermediates:
        _remove_intermediates(result)
    result.write()
    return result


def write_modelfile(config: Any, tokenizer_dir: Path, gguf: Path, path: Path) -> Path:
    """The Modelfile beside ``gguf`` (FROM is relative, so the folder can move as a whole)."""
    from transformers import AutoTokenizer

    from loragate.packaging.modelfile import build_modelfile

    settings = config.packaging.modelfile
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    modelfile = build_modelfile(f"./{gguf.name}", tokenizer, settings)
    if modelfile.system is None:
        # The model was trained with this system prompt; serving it without would differ.
        modelfile.system = config.data_args.system_prompt
    return write_text_durably(path, modelfile.render())


def _bytes_written(result: PackageResult) -> int:
    files = [result.f16_gguf, *result.quantized.values(), result.adapter_gguf, result.modelfile]
    total = sum(Path(p).stat().st_size for p in set(files) if p is not None)
    if result.merged_dir is not None:
        total += sum(p.stat().st_size for p in result.merged_dir.rglob("*") if p.is_file())
    return total


def _remove_intermediates(result: PackageResult) -> None:
    if result.merged_dir is not None:
        shutil.rmtree(result.merged_dir, ignore_errors=True)
        result.merged_dir = None
    if result.f16_gguf is not None and result.f16_gguf not in result.quantized.values():
        result.f16_gguf.unlink(missing_ok=True)
        result.f16_gguf = None
