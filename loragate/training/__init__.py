"""Step 1: LoRA training (data → formatted batches → peft + HF Trainer → adapter folder).

Submodules import torch/transformers lazily where they can; import what you need from them:
``base_model`` (materialise/resolve the base), ``data`` (JSONL validation), ``formatting``
(chat template, labels, collators), ``trainer`` (:func:`~loragate.training.trainer.train`),
``cli`` (``loragate train``).
"""

from loragate.training.trainer import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    STATS_FILE,
    TrainingDiverged,
    TrainingError,
    TrainingOutcome,
    is_up_to_date,
    read_stats,
    train,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "STATS_FILE",
    "TrainingDiverged",
    "TrainingError",
    "TrainingOutcome",
    "is_up_to_date",
    "read_stats",
    "train",
]
