"""Tiny GGUF files written with the ``gguf`` package's writer (no model, no converter)."""

from __future__ import annotations

from pathlib import Path


def write_tiny_gguf(path: Path, general_type: str = "model", vocab: int = 500) -> Path:
    """A structurally complete GGUF: a metadata array, two tensors, the given general.type."""
    import numpy as np
    from gguf import GGUFWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "llama")
    writer.add_type(general_type)
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(vocab)])
    writer.add_tensor("token_embd.weight", np.arange(256, dtype=np.float32).reshape(8, 32))
    writer.add_tensor("output.weight", np.ones((8, 300), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
