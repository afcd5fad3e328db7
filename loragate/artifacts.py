"""What every stage does with the files it makes: names their content, writes them whole, and
reuses them when their inputs are unchanged.

Training, packaging, the gate plugin and the data generator all go through this module, so
that none of them imports another stage for a digest or a write, and a digest means the same
thing everywhere.

**Digests.** A file's digest is the sha256 of its bytes, remembered per (path, size, mtime) so
a multi-GB GGUF is hashed once per process. Digests over several files put a separator between
each name and its bytes, so ``("ab", b"c")`` and ``("a", b"bc")`` never collide.

**Durable writes.** A rename alone is atomic for running processes but not across a crash of
the machine: ext4 and xfs may commit the new name before the data, which leaves a final-named
file that is empty or short. Syncing the file before the rename and the folder after it makes
"a file with the final name is complete" hold after a power cut too (the cost is measured in
``benchmarks/packaging.py``).

**Modes.** safetensors writes through an owner-only (0600) temporary file, so adapters and
merged weights would be unreadable to a model server running as another user; finished files
get the mode a plain ``open`` would have given them.

**Reuse.** A stage that made an artifact records the digest of its inputs beside it in an
:class:`InputsStamp`; :func:`reusable` says whether a later call may take the artifact as it
is: the same inputs, and every output file still there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

_HASH_CHUNK = 1 << 20

# What peft writes for an adapter: training makes these files, packaging and the Step 1 checks
# read them.
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

def cache_root() -> Path:
    """Where large reusable artifacts go (the materialised base model, llama.cpp's converter):
    ``$LORAGATE_CACHE``, else ``~/.cache/loragate``."""
    return Path(os.environ.get("LORAGATE_CACHE", Path.home() / ".cache" / "loragate"))


# -- digests ------------------------------------------------------------------------------------


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _file_digest(str(resolved), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the memo key only: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def combine_digests(*parts: str) -> str:
    """One digest of several (digests or short labels), in the order given."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def folder_digest(folder: str | Path) -> str:
    """Digest of the regular files directly in a model folder (weights, config, tokenizer)."""
    root = Path(folder)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    return combine_digests(*(f"{p.name}={file_digest(p)}" for p in files))


def files_digest(paths: Iterable[str | Path]) -> str:
    """Digest of the names and bytes of the files given, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_HASH_CHUNK), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def tree_digest(paths: Iterable[str | Path]) -> str:
    """Digest of the files given and of every file under the folders given, each folder's files
    in sorted order and named by their path inside it."""
    digest = hashlib.sha256()
    for root in (Path(p) for p in paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if not path.is_file():
                continue
            name = path.relative_to(root).as_posix() if root.is_dir() else path.name
            digest.update(f"{name}\0{file_digest(path)}\0".encode())
    return digest.hexdigest()


def json_digest(value: Any) -> str:
    """Digest of ``value`` as canonical JSON (sorted keys, no spaces; other types as str)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_folder_fingerprint(model_dir: str | Path) -> str:
    """Digest of a model folder's config and its weight files' names and sizes.

    Hashing the bytes of a 7B model would take minutes; a changed model changes its sizes or
    its config in practice.
    """
    model_dir = Path(model_dir)
    parts = [(model_dir / "config.json").read_text(encoding="utf-8")]
    for path in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        parts.append(f"{path.name}:{path.stat().st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# -- durable writes -----------------------------------------------------------------------------


def sync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(path: str | Path) -> None:
    """Make the folder's entries (a rename into it) durable; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(partial: str | Path, final: str | Path) -> None:
    """Rename the complete ``partial`` to ``final`` once its bytes are on the disk."""
    sync_file(partial)
    os.replace(partial, final)
    sync_folder(Path(final).parent)


def sync_folder_files(folder: str | Path) -> None:
    """Sync every file directly in ``folder``, then the folder (before renaming it in place)."""
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            sync_file(path)
    sync_folder(folder)


def write_text_durably(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a partial file beside it and a durable rename."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        durable_replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_json_durably(path: str | Path, value: Any) -> Path:
    """``value`` as indented JSON with sorted keys, written by :func:`write_text_durably`."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"
    return write_text_durably(path, text)


def umask_mode() -> int:
    """The mode a plain ``open`` gives a new file under the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def give_files_the_umask_mode(folder: str | Path) -> None:
    """Give the files directly in ``folder`` the mode a plain ``open`` would have given them
    (the adapter after training, the merged model before it is renamed in place)."""
    mode = umask_mode()
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


# -- reuse when the inputs are unchanged --------------------------------------------------------


class InputsStamp(BaseModel):
    """The digest of the inputs an artifact was made from, stored beside it."""

    model_config = ConfigDict(extra="forbid")

    inputs_hash: str

    def write(self, path: str | Path) -> Path:
        return write_text_durably(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> InputsStamp | None:
        """The stamp in ``path``; None when there is none or it cannot be read (a stamp that
        cannot be read means "rebuild", never an error)."""
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except (OSError, ValueError, ValidationError):
            return None


def reusable(recorded_hash: str | None, inputs_hash: str, outputs: Sequence[str | Path]) -> bool:
    """Whether an artifact made from ``recorded_hash`` may stand for one made from
    ``inputs_hash``: the same inputs, and every output file still there."""
    if recorded_hash is None or recorded_hash != inputs_hash:
        return False
    return all(Path(p).is_file() for p in outputs)
