"""Quantize an f16/bf16 GGUF with llama.cpp's own ``llama_model_quantize``.

A file that does not start with the GGUF magic is refused before llama.cpp sees it; when
llama.cpp fails (it refuses truncated files cleanly, checked), loading the input's metadata
says whether the input is broken, so a truncated file gets :class:`InvalidGGUFError` naming it.
The output is written under a hidden temporary name beside the target and renamed into place
only when llama.cpp reports success, so an interrupted run never leaves a file that looks
finished.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from loragate.artifacts import durable_replace

QUANT_TYPES = ("Q4_K_M", "Q5_K_M", "Q8_0", "f16")
DEFAULT_QUANT_TYPE = "Q4_K_M"
GGUF_MAGIC = b"GGUF"
# llama.cpp's file types, by the names the config uses (llama_ftype in llama.h).
_FTYPE_NAMES = {
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
}


class InvalidGGUFError(ValueError):
    """A GGUF file that cannot be read: truncated, not a GGUF, or missing its metadata."""


class QuantizeError(RuntimeError):
    """llama.cpp could not quantize the model; the message names the input and the type."""


def ftype_value(quant_type: str) -> int:
    """llama.cpp's ``llama_ftype`` number for a quant type name (``Q4_K_M``, ``f16``, …)."""
    import llama_cpp

    if quant_type not in _FTYPE_NAMES:
        raise ValueError(f"unknown quant type {quant_type!r}; known: {sorted(_FTYPE_NAMES)}")
    return int(getattr(llama_cpp, _FTYPE_NAMES[quant_type]))


def read_metadata(path: Path) -> dict[str, str]:
    """A GGUF's metadata as llama.cpp reads it (strings), after llama.cpp accepted the file.

    llama.cpp loads only the vocabulary here (a fraction of a second, where ``GGUFReader`` takes
    seconds on a 49k-token vocabulary) but still checks every tensor lies within the file, so a
    truncated file is refused. Raises :class:`InvalidGGUFError` naming the file.
    """
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    _check_magic(Path(path))
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        model = LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError:
        raise InvalidGGUFError(
            f"{path}: llama.cpp cannot load this GGUF (truncated or corrupted)"
        ) from None
    try:
        return model.metadata()
    finally:
        model.close()


def read_file_type(path: Path) -> int:
    """The ``general.file_type`` of a GGUF llama.cpp accepts (see :func:`read_metadata`)."""
    metadata = read_metadata(path)
    if "general.file_type" not in metadata:
        raise InvalidGGUFError(f"{path}: GGUF has no 'general.file_type' metadata")
    return int(metadata["general.file_type"])


def quantize_gguf(
    source: Path,
    dest: Path,
    quant_type: str = DEFAULT_QUANT_TYPE,
    *,
    n_threads: int = 0,
    quantize_fn: Callable[[bytes, bytes, object], int] | None = None,
) -> Path:
    """Write ``source`` (an f16/bf16 GGUF) quantized to ``quant_type`` at ``dest``.

    Asking for the type the input already has is allowed (llama.cpp copies the tensors; the
    pipeline uses the converted f16 file as is and does not call this). ``quantize_fn``
    replaces ``llama_cpp.llama_model_quantize`` (tests interrupt a run with it). A missing,
    truncated or non-GGUF input raises :class:`InvalidGGUFError`.
    """
    source, dest = Path(source), Path(dest)
    target_ftype = ftype_value(quant_type)
    _check_magic(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        _run_llama_quantize(source, partial, target_ftype, n_threads, quant_type, quantize_fn)
        durable_replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _run_llama_quantize(
    source: Path,
    partial: Path,
    target_ftype: int,
    n_threads: int,
    quant_type: str,
    quantize_fn: Callable[[bytes, bytes, object], int] | None,
) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = target_ftype
    params.nthread = n_threads
    quantize = quantize_fn or llama_cpp.llama_model_quantize
    with _captured_stderr() as log:
        status = quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        log_text = log.read_text(errors="replace")
    if status == 0 and partial.is_file():
        return
    # The status says only "failed": loading the input tells a broken file from anything else.
    read_metadata(source)
    tail = "\n".join(log_text.strip().splitlines()[-5:])
    raise QuantizeError(
        f"{source}: llama_model_quantize to {quant_type} failed (status {status}):\n{tail}"
    )


def _check_magic(path: Path) -> None:
    if not path.is_file():
        raise InvalidGGUFError(f"{path}: GGUF file not found")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise InvalidGGUFError(
            f"{path}: not a GGUF file (starts with {magic!r}, not {GGUF_MAGIC!r})"
        )


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Path]:
    """Send fd 2 (where llama.cpp logs, below Python) to a temp file for the duration."""
    with tempfile.NamedTemporaryFile(prefix="loragate-quantize-", suffix=".log") as log:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(log.fileno(), 2)
            yield Path(log.name)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quantized_name(stem: str, quant_type: str) -> str:
    """``model`` + ``Q4_K_M`` → ``model.Q4_K_M.gguf``: the naming DESIGN.md's data flow uses."""
    return f"{stem}.{quant_type}.gguf"
