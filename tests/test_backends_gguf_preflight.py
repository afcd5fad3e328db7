"""GGUF preflight: a broken model or adapter file is a one-line SpecError naming spec and reason,
found from the header and tensor table alone (no tensor data is read)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.backends.gguf_file import GgufFileError, check_gguf_file
from loragate.backends.spec import ModelFileNotFound, SpecError, parse_spec
from tests.gguf_files import write_tiny_gguf


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "model.gguf")


@pytest.fixture(scope="module")
def good_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "adapter.gguf", "adapter")


def _copy_cut(source: Path, dest: Path, keep: int) -> Path:
    dest.write_bytes(source.read_bytes()[:keep])
    return dest


def _single_line_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    message = str(info.value)
    assert "\n" not in message
    assert f"model spec {text!r}" in message
    return message


def test_complete_files_pass_and_report_their_layout(good_model: Path,
                                                     good_adapter: Path) -> None:
    layout = check_gguf_file(good_model)
    assert layout.version == 3 and layout.tensor_count == 2
    assert layout.general_type == "model" and layout.architecture == "llama"
    assert layout.data_end <= layout.file_size == good_model.stat().st_size
    spec = parse_spec(f"gguf:{good_model}+{good_adapter}")
    assert (spec.path, spec.adapter) == (good_model, good_adapter)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFound, match=r"model not found: .*absent\.gguf"):
        parse_spec(f"gguf:{tmp_path / 'absent.gguf'}")


def test_a_symlink_loop_or_a_dangling_link_is_named_not_just_missing(tmp_path: Path) -> None:
    loop = tmp_path / "model.gguf"
    loop.symlink_to("model.gguf")
    with pytest.raises(ModelFileNotFound, match=r"model\.gguf is a symbolic link that loops"):
        parse_spec(f"gguf:{loop}")
    dangling = tmp_path / "gone.gguf"
    dangling.symlink_to(tmp_path / "deleted.gguf")
    with pytest.raises(ModelFileNotFound, match=r"gone\.gguf is a symbolic link to .*"
                                                 r"deleted\.gguf, which does not exist"):
        parse_spec(f"gguf:{dangling}")


def test_truncated_data_section_says_how_many_bytes_are_missing(good_model: Path,
                                                                tmp_path: Path) -> None:
    cut = _copy_cut(good_model, tmp_path / "cut.gguf", good_model.stat().st_size - 100)
    message = _single_line_error(f"gguf:{cut}")
    assert f"model {cut} is truncated" in message
    assert "(100 missing)" in message


def test_file_cut_inside_its_metadata(good_model: Path, tmp_path: Path) -> None:
    cut = _copy_cut(good_model, tmp_path / "cut.gguf", 300)
    message = _single_line_error(str(cut))
    assert "is truncated: the file ends inside metadata entry" in message


def test_text_file_renamed_gguf_is_not_a_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my notes, not a model\n")
    message = _single_line_error(f"gguf:{fake}")
    assert "is not a GGUF file (starts with b'thes'" in message


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in _single_line_error(f"gguf:{empty}")


def test_a_folder_named_like_a_gguf(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    assert "is not a regular file" in _single_line_error(f"gguf:{folder}")


def test_unsupported_version(good_model: Path, tmp_path: Path) -> None:
    data = bytearray(good_model.read_bytes())
    data[4:8] = (1).to_bytes(4, "little")
    old = tmp_path / "v1.gguf"
    old.write_bytes(bytes(data))
    assert "GGUF version 1, which llama.cpp does not read" in _single_line_error(f"gguf:{old}")


@pytest.mark.parametrize("fault", ["truncated", "text", "empty", "missing"])
def test_adapter_part_is_checked_too(fault: str, good_model: Path, good_adapter: Path,
                                     tmp_path: Path) -> None:
    adapter = tmp_path / "lora.gguf"
    if fault == "truncated":
        _copy_cut(good_adapter, adapter, good_adapter.stat().st_size - 1)
    elif fault == "text":
        adapter.write_text("{}")
    elif fault == "empty":
        adapter.write_bytes(b"")
    text = f"gguf:{good_model}+{adapter}"
    expected = {"truncated": "is truncated", "text": "is not a GGUF file",
                "empty": "is empty", "missing": "adapter not found"}[fault]
    message = _single_line_error(text)
    assert expected in message and str(adapter) in message


def test_model_and_adapter_in_swapped_places(good_model: Path, good_adapter: Path,
                                             tmp_path: Path) -> None:
    assert "is a LoRA adapter GGUF" in _single_line_error(f"gguf:{good_adapter}")
    second_model = Path(shutil.copy(good_model, tmp_path / "other-model.gguf"))
    message = _single_line_error(f"gguf:{good_model}+{second_model}")
    assert "is not a LoRA adapter GGUF (general.type is 'model'" in message


def test_arrays_nested_past_any_real_file_are_refused(tmp_path: Path) -> None:
    import struct

    # One metadata entry: an array of arrays of arrays ... 2000 deep (12 bytes a level).
    body = struct.pack("<Q", 1) + b"k" + struct.pack("<I", 9)
    body += struct.pack("<IQ", 9, 1) * 2000
    path = tmp_path / "deep.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + body)
    with pytest.raises(GgufFileError, match="nests arrays"):
        check_gguf_file(path)


def test_no_check_files_skips_the_preflight(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert parse_spec(f"gguf:{empty}", check_files=False).path == empty


def test_big_sparse_file_is_checked_without_reading_its_data(good_model: Path,
                                                             tmp_path: Path) -> None:
    # A header claiming 4 GiB of tensor data over a file that is sparse (holes read as zeros):
    # the check compares sizes; reading the data would take seconds and 4 GiB of page cache.
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "big.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor_info("huge.weight", (1 << 30,), np.dtype(np.float32), 1 << 32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    header_end = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(header_end + 4096 + (1 << 32))
    layout = check_gguf_file(path)
    assert layout.data_end <= layout.file_size
    os.truncate(path, layout.data_end - 1)
    with pytest.raises(GgufFileError, match=r"\(1 missing\)"):
        check_gguf_file(path)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0),
       flips=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=4))
def test_any_damage_is_a_clean_error_or_a_file_that_still_adds_up(
        good_model: Path, tmp_path: Path, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(good_model.read_bytes())
    data = data[:cut % (len(data) + 1)]
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(bytes(data))
    try:
        layout = check_gguf_file(damaged)
    except GgufFileError as exc:
        assert "\n" not in str(exc)
        return
    assert layout.data_end <= layout.file_size


def test_llama_cpp_converted_files_pass_and_a_cut_copy_fails(
        tiny_gguf: Path, tiny_adapter_gguf: Path, tmp_path: Path) -> None:
    # Files from llama.cpp's own converters (padding, alignment, real tensor types), not just
    # the gguf package's writer.
    assert parse_spec(f"gguf:{tiny_gguf}+{tiny_adapter_gguf}").adapter == tiny_adapter_gguf
    assert check_gguf_file(tiny_gguf).data_end <= tiny_gguf.stat().st_size
    cut = _copy_cut(tiny_gguf, tmp_path / "cut.gguf", tiny_gguf.stat().st_size - 4096)
    assert "is truncated" in _single_line_error(f"gguf:{cut}+{tiny_adapter_gguf}")
