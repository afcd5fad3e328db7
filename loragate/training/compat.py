"""What loragate needs from the installed transformers that differs between its versions: the
Trainer with a reproducible length-grouped shuffle, the step count per epoch as the Trainer
counts it, and the plan's argument names mapped onto the installed ``TrainingArguments``."""

from __future__ import annotations

import math
from typing import Any

from loragate.training.errors import TrainingError


def trainer_class() -> type:
    """HF's Trainer, with a length-grouped shuffle drawn from (seed, epoch) alone.

    The installed Trainer draws the length-grouped order of each epoch from the global
    generator, whose state at epoch 2 depends on everything run since the seed; a run
    resumed inside epoch 2 would then skip the batches of an order the first run never used.
    Plain shuffling needs no help: accelerate's seedable sampler already seeds each epoch.
    """
    import torch
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, grouped: LengthGroupedSampler, seed: int) -> None:
            super().__init__(grouped.batch_size, lengths=grouped.lengths)
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Any:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size,
                                                   generator=generator))

    class LoragateTrainer(Trainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            sampler = super()._get_train_sampler(*args, **kwargs)
            if type(sampler) is LengthGroupedSampler:
                return EpochSeededLengthGroupedSampler(sampler, self.args.seed)
            return sampler

    return LoragateTrainer


def steps_per_epoch(batches_per_epoch: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps in one epoch, counted as the installed Trainer counts them."""
    return max(math.ceil(batches_per_epoch / max(gradient_accumulation_steps, 1)), 1)


def for_installed_transformers(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map the plan's argument names onto the installed ``TrainingArguments``.

    transformers 5 folded ``warmup_ratio`` into ``warmup_steps`` (a float below 1 is a ratio)
    and ``group_by_length`` into ``train_sampling_strategy``, and renamed
    ``gradient_checkpointing`` to ``activation_checkpointing``; older versions have the old names.
    """
    import dataclasses

    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs = dict(kwargs)
    if "warmup_ratio" not in known:
        ratio = kwargs.pop("warmup_ratio", 0.0) or 0.0
        if ratio and not kwargs.get("warmup_steps"):
            kwargs["warmup_steps"] = float(ratio)
    if "group_by_length" not in known and kwargs.pop("group_by_length", False):
        kwargs.setdefault("train_sampling_strategy", "group_by_length")
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if new in known and old in kwargs:
            value = kwargs.pop(old)
            kwargs.setdefault(new, value)
    if "train_sampling_strategy" not in known:
        strategy = kwargs.pop("train_sampling_strategy", None)
        if strategy == "group_by_length":
            kwargs["group_by_length"] = True
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TrainingError(
            f"training_args {unknown} are not arguments of the installed transformers "
            "TrainingArguments"
        )
    return kwargs

