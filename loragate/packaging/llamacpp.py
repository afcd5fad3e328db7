"""llama.cpp's Python converters, fetched from the pinned llama-cpp-python sdist and run.

``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py`` are not installed by any wheel: they
live in the llama-cpp-python source distribution under ``vendor/llama.cpp/``. The sdist of the
version the project pins is downloaded once through pip, its sha256 compared with the one
recorded here, and only the converters, the ``conversion/`` package they import, the chat
templates some architectures read and the sdist's own ``gguf-py/gguf`` are extracted into a
cache folder. The converters need that ``gguf-py``: this version's ``conversion/base.py`` uses
``gguf.LazyChunkedTensor``, which PyPI's ``gguf`` 0.19.0 does not have (checked), although both
call themselves 0.19.0. The converters put ``gguf-py`` first on their path themselves; loragate's
own process keeps PyPI's ``gguf`` for reading files.

The converters run in a subprocess of the current interpreter, so their imports, memory and
logging stay out of the caller's process, and their output is written under a temporary name
and renamed only when the converter exits cleanly.

Importing torch, transformers and the converter package costs a fresh process about 5 s on
2 cores, more than converting a 135M model. :func:`prestarted` starts that process before its
input exists (while the merge runs) and hands it the command line when the input is ready: the
same converter, the same arguments and the same isolation, with its imports done in parallel.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from loragate.artifacts import cache_root, durable_replace, file_digest

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
# sha256 of the sdist as published on PyPI; a different file is refused.
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDOR_PREFIX = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
CONVERTER_DIRNAME = f"llama-cpp-converter-{LLAMA_CPP_PYTHON_VERSION}"
HF_CONVERTER = "convert_hf_to_gguf.py"
LORA_CONVERTER = "convert_lora_to_gguf.py"
# What the two scripts import or read, relative to vendor/llama.cpp/.
EXTRACTED_FILES = (HF_CONVERTER, LORA_CONVERTER)
EXTRACTED_DIRS = ("conversion/", "models/templates/", "gguf-py/gguf/")
COMPLETE_MARKER = ".loragate-complete"
# Lines of the converter's stderr quoted in an error: enough for the traceback's end.
STDERR_TAIL_LINES = 30
OUTTYPES = ("f32", "f16", "bf16", "q8_0", "auto")
# Safetensors up to this size are converted with --no-lazy: computing every output tensor
# before writing holds one f16 copy of the model in memory and skips the lazy-tensor
# bookkeeping; above it, lazy mode keeps memory at one tensor (a 7B model would need 14 GB).
NO_LAZY_MAX_BYTES = 2 * 2**30


class ConverterError(RuntimeError):
    """The llama.cpp converter could not be fetched, or a conversion failed."""


def ensure_converter(cache_dir: Path | None = None) -> Path:
    """The folder holding llama.cpp's converters under ``cache_dir``, fetched on first use.

    Safe against concurrent callers: the folder is built under a temporary name and renamed
    into place; a caller that loses the race throws its copy away and uses the winner's.
    """
    target = Path(cache_dir or cache_root()) / CONVERTER_DIRNAME
    if converter_is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        sdist = _download_sdist(staging / "download")
        digest = file_digest(sdist)
        if digest != SDIST_SHA256:
            raise ConverterError(
                f"{sdist.name}: sha256 {digest} is not the recorded {SDIST_SHA256}; "
                "refusing to run a converter from an unexpected source distribution"
            )
        _extract_converter(sdist, staging / "tree")
        (staging / "tree" / COMPLETE_MARKER).write_text(f"{SDIST_NAME} {digest}\n")
        _move_into_place(staging / "tree", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def converter_is_complete(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    if not marker.is_file() or SDIST_SHA256 not in marker.read_text(errors="replace"):
        return False
    needed = [folder / name for name in EXTRACTED_FILES] + [
        folder / "conversion" / "__init__.py", folder / "gguf-py" / "gguf" / "__init__.py",
    ]
    return all(path.is_file() for path in needed)


def _download_sdist(dest: Path) -> Path:
    dest.mkdir(parents=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "-q", "-d", str(dest),
        f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    sdist = dest / SDIST_NAME
    if result.returncode != 0 or not sdist.is_file():
        raise ConverterError(
            f"could not download the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist "
            f"(`{' '.join(command[2:])}` exited {result.returncode}):\n"
            + _tail(result.stderr or result.stdout)
        )
    return sdist


def _extract_converter(sdist: Path, out: Path) -> None:
    out.mkdir(parents=True)
    with tarfile.open(sdist, "r:gz") as archive:
        members = [m for m in archive.getmembers() if _wanted(m)]
        for member in members:
            member.name = member.name[len(VENDOR_PREFIX):]
        # The "data" filter refuses absolute paths, links out of the tree and device files.
        archive.extractall(out, members=members, filter="data")
    missing = [name for name in EXTRACTED_FILES if not (out / name).is_file()]
    if missing or not (out / "conversion" / "__init__.py").is_file():
        raise ConverterError(f"{sdist.name}: no {missing or ['conversion/']} under {VENDOR_PREFIX}")


def _wanted(member: tarfile.TarInfo) -> bool:
    if not member.isfile() or not member.name.startswith(VENDOR_PREFIX):
        return False
    relative = member.name[len(VENDOR_PREFIX):]
    return relative in EXTRACTED_FILES or relative.startswith(EXTRACTED_DIRS)


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists() and not converter_is_complete(target):
        # Left by a crash or an older layout: not trusted, replaced.
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not converter_is_complete(target):
            raise


def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def convert_hf_to_gguf(
    hf_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    cache_dir: Path | None = None,
    timeout_s: float | None = None,
    process: PrestartedConverter | None = None,
) -> Path:
    """Convert an HF model folder to a GGUF at ``out_path`` with llama.cpp's converter.

    ``process``, from :func:`prestarted` with :data:`HF_CONVERTER`, runs it in a process whose
    imports are already done; without it a fresh process is started.
    """
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r} is not one of {OUTTYPES}")
    if not (hf_dir / "config.json").is_file():
        raise ConverterError(f"{hf_dir}: not an HF model folder (no config.json)")
    converter = ensure_converter(cache_dir) / HF_CONVERTER
    args = [str(converter), str(hf_dir), "--outtype", outtype]
    if _weights_size(hf_dir) <= NO_LAZY_MAX_BYTES:
        args.append("--no-lazy")
    return _run_to_file(args, out_path, timeout_s=timeout_s, process=process)


def convert_lora_to_gguf(
    adapter_dir: Path,
    base_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    cache_dir: Path | None = None,
    timeout_s: float | None = None,
    process: PrestartedConverter | None = None,
) -> Path:
    """Convert a peft LoRA adapter folder to a llama.cpp LoRA GGUF (for ``--lora``/``ADAPTER``).

    ``process``: as for :func:`convert_hf_to_gguf`, from :func:`prestarted` with
    :data:`LORA_CONVERTER`.
    """
    adapter_dir, base_dir, out_path = Path(adapter_dir), Path(base_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r} is not one of {OUTTYPES}")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConverterError(f"{adapter_dir}: not a peft adapter folder (no adapter_config.json)")
    if not (base_dir / "config.json").is_file():
        raise ConverterError(f"{base_dir}: not an HF model folder (no config.json)")
    converter = ensure_converter(cache_dir) / LORA_CONVERTER
    return _run_to_file(
        [str(converter), str(adapter_dir), "--base", str(base_dir), "--outtype", outtype],
        out_path,
        timeout_s=timeout_s,
        process=process,
    )


def _weights_size(hf_dir: Path) -> int:
    return sum(p.stat().st_size for p in hf_dir.glob("*.safetensors"))


def _run_to_file(
    args: Sequence[str],
    out_path: Path,
    *,
    timeout_s: float | None,
    process: PrestartedConverter | None = None,
) -> Path:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial-{os.getpid()}")
    argv = [*args, "--outfile", str(partial)]
    if process is not None and process.script != Path(args[0]).name:
        raise ValueError(f"a process prestarted for {process.script} cannot run {args[0]}")
    try:
        if process is not None:
            returncode, stdout, stderr = process.run(argv, timeout_s)
        else:
            result = subprocess.run(
                [sys.executable, *argv], capture_output=True, text=True, env=_converter_env(),
                timeout=timeout_s, check=False,
            )
            returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
        if returncode != 0 or not partial.is_file():
            raise ConverterError(
                f"{Path(args[0]).name} failed for {out_path.name} "
                f"(exit {returncode}); last lines of its output:\n" + _tail(stderr or stdout)
            )
        durable_replace(partial, out_path)
    except subprocess.TimeoutExpired:
        raise ConverterError(
            f"{Path(args[0]).name} did not finish within {timeout_s}s for {out_path.name}"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return out_path


# The prestarted process: the converter script's own path set-up and imports, a warm-up on a
# model of the same architecture (transformers imports a model's config code on first use),
# then one command line read from stdin, run as the script would run.
# Not the tokenizer: building one is real work the warm-up would only throw away. The garbage
# collector is off while importing (imports make few cycles, and collecting them is slow) and the
# imported objects are then frozen out of later collections.
_PRESTART_BOOTSTRAP = """
import gc, json, os, runpy, sys
gc.disable()
folder, warm_dir = sys.argv[1], sys.argv[2]
sys.path[0:0] = [folder, os.path.join(folder, "gguf-py")]
import torch, conversion
if warm_dir:
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(warm_dir)
    except Exception:
        pass  # only a warm-up: the real run reports its own errors
gc.freeze()
gc.enable()
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)  # cancelled
sys.argv = json.loads(line)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class PrestartedConverter:
    """One run of a llama.cpp converter in a process started ahead of it (:func:`prestarted`)."""

    def __init__(self, script: str, folder: Path, warm_dir: Path | None) -> None:
        if script not in EXTRACTED_FILES:
            raise ValueError(f"{script!r} is not one of the converters {EXTRACTED_FILES}")
        self.script = script
        self._proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-c", _PRESTART_BOOTSTRAP, str(folder), str(warm_dir or "")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_converter_env(),
        )

    def run(self, argv: Sequence[str], timeout_s: float | None) -> tuple[int, str, str]:
        """Run ``python *argv`` in the prestarted process: (exit status, stdout, stderr)."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise ConverterError(f"the process prestarted for {self.script} was already used")
        try:
            stdout, stderr = proc.communicate(json.dumps(list(argv)) + "\n", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return proc.returncode, stdout, stderr

    def close(self) -> None:
        """Stop the process if it was never used (an earlier step failed)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.communicate()


@contextlib.contextmanager
def prestarted(
    script: str, cache_dir: Path | None = None, *, warm_dir: Path | None = None
) -> Iterator[PrestartedConverter]:
    """A converter process that does its imports now and runs when given its arguments.

    ``warm_dir`` is an HF folder of the same architecture as the model to convert (the base):
    loading its config imports the code the real run needs. Pass the process to
    :func:`convert_hf_to_gguf` or :func:`convert_lora_to_gguf`; it is killed on exit if unused.
    """
    process = PrestartedConverter(script, ensure_converter(cache_dir), warm_dir)
    try:
        yield process
    finally:
        process.close()


def _converter_env() -> dict[str, str]:
    env = dict(os.environ)
    # The converters must use the sdist's gguf-py (see the module docstring); no hub, ever.
    env.pop("NO_LOCAL_GGUF", None)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env
