"""The bundled Web4 data: a seeded, deterministic generator (``loragate data generate``)."""
