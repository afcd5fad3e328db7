"""Where training runs and in what precision: CUDA, then Apple MPS, then the CPU; bf16 where the
device has it natively, fp16 on a CUDA device without it, fp32 otherwise. Also what the
device's peak memory is and which process of a distributed run this is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from loragate.training.errors import TrainingError

GIB = 1024**3


def select_device(requested: str = "auto") -> str:
    """``cuda``, then ``mps``, then ``cpu`` for ``auto``; an explicit choice must be available."""
    import torch

    available = {
        "cuda": torch.cuda.is_available(),
        "mps": _mps_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(name for name in ("cuda", "mps", "cpu") if available[name])
    if requested not in available:
        raise TrainingError(f"training.device '{requested}' is not one of auto, cuda, mps, cpu")
    if not available[requested]:
        raise TrainingError(f"training.device is '{requested}' but no {requested} device is usable")
    return requested


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def supports_bf16(device: str) -> bool:
    """Whether bf16 training is native on the device (CPU bf16 autocast is slow: never)."""
    import torch

    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device == "mps":
        # bf16 on MPS needs macOS 14.
        check = getattr(torch.backends.mps, "is_macos_or_newer", None)
        return bool(check is not None and check(14, 0))
    return False


@dataclass(frozen=True)
class Precision:
    name: str  # "bf16", "fp16" or "fp32"
    note: str | None = None

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def fp16(self) -> bool:
        return self.name == "fp16"

    def torch_dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def choose_precision(device: str, want_bf16: bool, want_fp16: bool) -> Precision:
    """bf16 where the device supports it, fp16 on a CUDA device without bf16, else fp32."""
    if device == "cpu":
        if want_bf16 or want_fp16:
            return Precision("fp32", "half precision requested, but training on CPU runs in fp32")
        return Precision("fp32")
    if want_bf16 or want_fp16:
        if supports_bf16(device):
            return Precision("bf16")
        if device == "cuda":
            return Precision("fp16", "bf16 unsupported on this GPU: fp16 mixed precision instead")
        return Precision("fp32", f"bf16 unsupported on {device}: training in fp32")
    return Precision("fp32")


def peak_memory_gb(device: str) -> tuple[float, str]:
    """Current peak memory of this process on the device, and what was measured."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / GIB, "cuda max allocated"
    if device == "mps":
        return torch.mps.driver_allocated_memory() / GIB, "mps driver allocated"
    import psutil

    return psutil.Process().memory_info().rss / GIB, "cpu rss"


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def agree_across_processes(flag: bool, args: Any) -> bool:
    """The flag of any process, on every process: under DDP one process stopping alone would
    leave the others waiting for it forever."""
    import torch

    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized() \
            or dist.get_world_size() < 2:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def apply_mps_settings(config: Any, device: str) -> None:
    if device != "mps":
        return
    ratio = (config.mps_optimization or {}).get("high_watermark_ratio")
    if ratio is not None:
        # Read by PyTorch when the MPS allocator starts; this run's process only.
        os.environ.setdefault("PYTORCH_MPS_HIGH_WATERMARK_RATIO", str(ratio))

