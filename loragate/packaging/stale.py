"""Temporaries that killed packaging runs left in the package folder, found and removed.

Every step writes under a temporary name and renames when complete, and removes the temporary
in a ``finally``; a run killed by SIGKILL, the OOM killer or a power cut skips that, and each
such run leaves its merged model (GBs) or half a GGUF behind, for good. The names carry the
writer's process id, so a later run removes those whose process is gone and leaves a run still
going in the same folder alone:

* ``.merged-<pid>-<hex>/``: the merge's staging folder (``merge._staging_dir``);
* ``.merged.old-<pid>/``: the previous merged folder while the new one is renamed in;
* ``.<file>.partial-<pid>``: a GGUF being converted or quantized.

A staging folder named before the pid was recorded (``.merged-<hex>``) is removed once nothing
has touched it for :data:`UNTAGGED_AGE_S`: a merge writes its shards into it continuously.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UNTAGGED_AGE_S = 3600.0
_TAGGED = (
    re.compile(r"^\..+-(?P<pid>\d+)-[0-9a-f]{8}$"),  # merge._staging_dir
    re.compile(r"^\..+\.old-(?P<pid>\d+)$"),  # merge._replace_dir
    re.compile(r"^\..+\.partial-(?P<pid>\d+)$"),  # llamacpp._run_to_file, quantize_gguf
)
_UNTAGGED = re.compile(r"^\.merged-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Removed:
    path: Path
    size_bytes: int
    pid: int | None

    def describe(self) -> str:
        owner = f"pid {self.pid}, no longer running" if self.pid is not None else \
            f"no pid recorded, untouched for over {UNTAGGED_AGE_S / 3600:.0f} h"
        return f"{self.path.name} ({self.size_bytes / 2**20:.1f} MiB; {owner})"


def pid_is_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (one of another user's counts as alive)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def _owner(entry: Path, now: float) -> tuple[bool, int | None]:
    """(is a stale temporary, the pid its name records)."""
    for pattern in _TAGGED:
        match = pattern.match(entry.name)
        if match:
            pid = int(match.group("pid"))
            return not pid_is_alive(pid), pid
    if _UNTAGGED.match(entry.name) and entry.is_dir():
        return now - entry.stat().st_mtime > UNTAGGED_AGE_S, None
    return False, None


def remove_stale_temporaries(folder: Path) -> list[Removed]:
    """Remove the temporaries of dead runs directly in ``folder``; log and return each one."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Removed] = []
    now = time.time()
    for entry in sorted(folder.iterdir()):
        stale, pid = _owner(entry, now)
        if not stale:
            continue
        try:
            size = _size(entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # removed meanwhile by another run cleaning up the same folder
        except OSError as exc:
            log.warning("could not remove stale temporary %s: %s", entry, exc)
            continue
        removed.append(Removed(entry, size, pid))
        log.warning("removed a temporary left by a killed packaging run: %s",
                    removed[-1].describe())
    return removed
