"""How a finished model file is put in place: readable as any new file, synced, renamed.

safetensors writes through an owner-only (0600) temporary file, so adapters and merged weights
would be unreadable to a model server running as another user; they get the umask's mode.

A rename alone is atomic for running processes but not across a crash of the machine: ext4
and xfs may commit the new name before the data, which leaves a final-named file that is
empty or short. Syncing the file before the rename and the folder after it makes "a file with
the final name is complete" hold after a power cut too. The cost is the disk's write speed
(about 300 MB/s here: the SmolLM2 package takes ~4 s longer), which is what packaging is measured
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


def give_files_the_umask_mode(folder: Path) -> None:
    """Give the files directly in ``folder`` the mode a plain ``open`` would have given them
    (the adapter after training, the merged model before it is renamed in place)."""
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
