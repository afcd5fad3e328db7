"""The bundled Web4 data: a seeded, deterministic generator (``loragate data generate``) and
the builders of the compliant documents it writes (:mod:`.examples`, :mod:`.code_examples`),
which the harness tests use as known-good answers."""
