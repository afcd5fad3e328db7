"""loragate: from JSONL instruction data to a deployment verdict."""

__version__ = "0.1.0"
