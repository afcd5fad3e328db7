"""Root conftest: this repository's own fixture modules (tiny models, services; see fixtures/).

The gate fixtures (--model, answers, records) come with the installed loragate plugin.
"""

# The Step 2 suite lives in ./packaging/. Under --import-mode=importlib pytest names its
# modules "packaging.test_…" and registers a bare "packaging" module for the folder, which
# then hides the PyPI `packaging` that transformers and sentence-transformers import (every
# Step 1/2 check and RAG smoke test died with "cannot import name 'version'"). Importing the
# real one first makes pytest hang the suite's modules under it instead.
import packaging.version  # noqa: F401

pytest_plugins = [
    "pytester",
    "fixtures.tiny_models",
    "fixtures.tiny_gguf",
    "fixtures.services",
]
