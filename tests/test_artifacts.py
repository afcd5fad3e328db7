"""The neutral artifacts module: digests, durable writes, reuse stamps (the rule that
training and packaging never import each other: tests/test_import_graph.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import loragate
from loragate.artifacts import (
    InputsStamp,
    file_digest,
    files_digest,
    folder_digest,
    give_files_the_umask_mode,
    json_digest,
    reusable,
    tree_digest,
    write_json_durably,
    write_text_durably,
)

PACKAGE = Path(loragate.__file__).parent


def test_changed_model_file_changes_its_digest(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF one")
    before = file_digest(model)
    assert file_digest(model) == before
    model.write_bytes(b"GGUF two, longer")
    assert file_digest(model) != before
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    first = folder_digest(folder)
    (folder / "model.safetensors").write_bytes(b"weights, trained")
    assert folder_digest(folder) != first


def _files(root: Path, contents: dict[str, bytes]) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for name, data in contents.items():
        (root / name).write_bytes(data)
        paths.append(root / name)
    return paths


def test_a_name_and_its_bytes_cannot_trade_characters(tmp_path: Path) -> None:
    # Without a separator "ab"+"c" and "a"+"bc" hash alike (the old plugin hash did).
    one = _files(tmp_path / "one", {"ab": b"c"})
    two = _files(tmp_path / "two", {"a": b"bc"})
    assert tree_digest(one) != tree_digest(two)
    assert files_digest(one) != files_digest(two)
    assert tree_digest([tmp_path / "one"]) != tree_digest([tmp_path / "two"])


def test_tree_digest_names_files_by_their_place_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "a" / "x" / "f.jsonl").write_text("{}\n")
    (tmp_path / "b" / "y").mkdir(parents=True)
    (tmp_path / "b" / "y" / "f.jsonl").write_text("{}\n")
    assert tree_digest([tmp_path / "a"]) != tree_digest([tmp_path / "b"])
    assert tree_digest([tmp_path / "a"]) == tree_digest([tmp_path / "a"])


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
def test_json_digest_ignores_key_order(value: dict) -> None:
    reordered = dict(reversed(list(value.items())))
    assert json_digest(value) == json_digest(reordered)


def test_durable_write_leaves_no_partial_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_json_durably(target, {"b": 1, "a": [1, 2]})
    write_text_durably(target, '{"a": 2}\n')
    assert target.read_text() == '{"a": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_files_get_the_umask_mode(tmp_path: Path) -> None:
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(b"w")
    weights.chmod(0o600)
    old = os.umask(0o022)
    try:
        give_files_the_umask_mode(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(weights.stat().st_mode) == 0o644


def test_a_stamp_round_trips_and_an_unreadable_one_means_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    InputsStamp(inputs_hash="abc").write(path)
    assert InputsStamp.read(path) == InputsStamp(inputs_hash="abc")
    path.write_text("{not json")
    assert InputsStamp.read(path) is None
    path.write_text('{"other": 1}')
    assert InputsStamp.read(path) is None
    assert InputsStamp.read(tmp_path / "absent.json") is None


def test_reusable_needs_the_same_inputs_and_every_output(tmp_path: Path) -> None:
    out = tmp_path / "model.gguf"
    out.write_bytes(b"GGUF")
    assert reusable("h", "h", [out])
    assert not reusable("h", "other", [out])
    assert not reusable(None, "h", [out])
    out.unlink()
    assert not reusable("h", "h", [out])
