"""Step 1: LoRA training (data → formatted batches → peft + HF Trainer → adapter folder).

Submodules import torch/transformers lazily where they can; import what you need from them:
``data`` (JSONL validation), ``formatting`` (chat template, labels, collators), ``device``,
``compat``, ``callbacks``, ``checkpoints``, ``stats`` (:class:`~.stats.TrainingStats`),
``trainer`` (:func:`~loragate.training.trainer.train`), ``cli`` (``loragate train``).
"""

from loragate.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from loragate.training.errors import TrainingDiverged, TrainingError
from loragate.training.stats import STATS_FILE, TrainingStats, is_up_to_date
from loragate.training.trainer import TrainingOutcome, train

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "STATS_FILE",
    "TrainingDiverged",
    "TrainingError",
    "TrainingOutcome",
    "TrainingStats",
    "is_up_to_date",
    "train",
]
