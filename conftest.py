"""Root conftest: the fixture modules shared by every suite (see fixtures/)."""

pytest_plugins = [
    "pytester",
    "fixtures.tiny_models",
    "fixtures.tiny_gguf",
    "fixtures.services",
    "fixtures.model",
    "fixtures.gates",
    "fixtures.serving",
]
