"""How packaging puts a finished file in place: written under a temporary name, synced, renamed.

A rename alone is atomic for running processes but not across a crash of the machine: ext4
and xfs may commit the new name before the data, which leaves a final-named file that is
empty or short. Syncing the file before the rename and the folder after it makes "a file with
the final name is complete" hold after a power cut too. The cost is the disk's write speed
(about 290 MB/s here, ~3 s for the SmolLM2 package), which is what packaging is measured
against in benchmarks/packaging.py.
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(path: Path) -> None:
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


def durable_replace(partial: Path, final: Path) -> None:
    """Rename the complete ``partial`` to ``final`` once its bytes are on the disk."""
    sync_file(partial)
    os.replace(partial, final)
    sync_folder(Path(final).parent)


def sync_folder_files(folder: Path) -> None:
    """Sync every file directly in ``folder``, then the folder (before renaming it in place)."""
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            sync_file(path)
    sync_folder(folder)
