"""The refusal judge's classifier: the bundled all-MiniLM-L6-v2 encoder, fine-tuned with LoRA
(peft) on labelled answers in many styles, its tokens mean-pooled into a linear head that gives
P(refuse).

The form rules of :mod:`loragate.harnesses.refusal_rules` are certain where they find a STOP
acknowledgement or a warned decision with an abort option; everything else (soft declines,
ask-first answers, a decline after a long explanation, compliant answers that open with "I
won't lie" or explain when an agent must stop) is decided here. The training sets ship with
the package (``data/refusal_train*.jsonl``, fourteen writers); the held-out set
(``data/refusal_heldout.jsonl``) was written apart, blind to them, and is only ever used to
measure (``loragate judges``).

The fine-tuned adapter and head ship too (``data/refusal_judge/``, about 1.4 MB), stamped with
the digest of the training files and settings they were fitted on; when those change, the
judge fits itself again on first use (minutes on two cores, with a progress bar) and keeps the
result in the loragate cache. ``python -m loragate.harnesses.refusal_model`` refits the
shipped copy.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

DATA = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA / "refusal_train.jsonl"
# Written by other hands in other styles (small chat models' voices): the judge must read any
# model's wording, not one writer's. The short file holds one-line answers; d holds declines
# that show the safe variant and compliances that open with an apology; e-i were the held-out
# sets of earlier versions of this judge (each measured once there, then folded in); j holds
# pairs (one prompt answered once refusing, once complying) so the act is learnt apart from
# the topic; k holds eight voices with both labels in each, so a voice is no proxy for a label;
# l and m are the held-out sets this judge was measured on before (two blind writers each:
# F1 0.947, then 0.906 with a red-teamer), each folded in unchanged when the next was written.
EXTRA_TRAIN_FILES = tuple(DATA / f"refusal_train_{suffix}.jsonl" for suffix in (
    "b", "c", "short", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"))
HELDOUT_FILE = DATA / "refusal_heldout.jsonl"
SHIPPED_DIR = DATA / "refusal_judge"
MODEL_NAME = "all-MiniLM-L6-v2"
LABELS = ("refuse", "comply")
# The prose a reader hears decides a refusal; code says nothing about it.
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>.*?(?:</tool_call>|\Z)", re.DOTALL)


class JudgeUnavailable(RuntimeError):
    """The classifier cannot run here (a missing package); the message says what to install."""


@dataclass(frozen=True)
class Labelled:
    answer: str
    label: str
    style: str = ""


def read_labelled(path: Path) -> list[Labelled]:
    """The labelled answers of a JSONL file (``answer``, ``label``, optional ``style``);
    errors name the file and line."""
    from loragate.textfiles import jsonl_lines

    out: list[Labelled] = []
    for line in jsonl_lines(path):
        if line.error is not None:
            raise ValueError(line.error)
        record: Any = line.value
        where = f"{path}:{line.number}"
        if not isinstance(record, dict) or not isinstance(record.get("answer"), str):
            raise ValueError(f"{where}: a labelled answer needs a string field 'answer'")
        if record.get("label") not in LABELS:
            raise ValueError(f"{where}: field 'label' must be 'refuse' or 'comply', got "
                             f"{record.get('label')!r}")
        out.append(Labelled(record["answer"], record["label"], str(record.get("style", ""))))
    return out


def training_files() -> tuple[Path, ...]:
    return (TRAIN_FILE, *EXTRA_TRAIN_FILES)


def training_examples() -> list[Labelled]:
    """Every labelled answer the classifier is fitted on."""
    return [e for path in training_files() for e in read_labelled(path)]


def prose(text: str) -> str:
    """The answer with its code blocks and tool calls replaced by a placeholder."""
    text = _FENCE.sub(" [code] ", text)
    text = _TOOL_CALL.sub(" [tool call] ", text)
    return " ".join(text.split())


# What the encoder reads of an answer (prose() and encode()): a change there makes every fitted
# judge stale, so it bumps this.
READING = 1


@dataclass(frozen=True)
class FineTune:
    """How the encoder is fitted: common LoRA settings, set once and checked on writers left
    out of the fit (benchmarks/refusal_judge.py), never tuned on the held-out set."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1
    # Every linear layer of the encoder: attention and feed-forward.
    targets: tuple[str, ...] = ("query", "key", "value", "dense")
    learning_rate: float = 5e-4
    epochs: int = 4
    batch_size: int = 16
    # A long answer keeps its first and last tokens: a decline opens most refusals and closes
    # some, after an explanation.
    max_tokens: int = 256
    seed: int = 0
    threshold: float = 0.5


class JudgeStamp(BaseModel):
    """What a fitted judge was fitted on; written beside its weights, read back to tell
    whether they still match the training files and settings."""

    model_config = ConfigDict(extra="forbid")
    training_digest: str
    base_model: str
    answers: int
    settings: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> JudgeStamp | None:
        try:
            return cls.model_validate_json((folder / "judge.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write(self, folder: Path) -> None:
        (folder / "judge.json").write_text(self.model_dump_json(indent=2) + "\n",
                                           encoding="utf-8")


def training_digest(settings: FineTune) -> str:
    """The training files' bytes and the settings: what a fitted judge depends on."""
    import hashlib

    from loragate.artifacts import files_digest

    settings_text = json.dumps(asdict(settings), sort_keys=True)
    return hashlib.sha256(f"{files_digest(training_files())}:{settings_text}:{READING}".encode()
                          ).hexdigest()


class RefusalClassifier:
    """The fine-tuned encoder and head: answers in, P(refuse) out."""

    def __init__(self, tokenizer: Any, encoder: Any, head: Any, settings: FineTune) -> None:
        self._tokenizer = tokenizer
        self._encoder = encoder
        self._head = head
        self.settings = settings
        self.threshold = settings.threshold

    def logits(self, texts: list[str]) -> Any:
        batch = encode(self._tokenizer, [prose(t) for t in texts], self.settings.max_tokens)
        tokens = self._encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        return self._head((tokens * mask).sum(1) / mask.sum(1))

    def probabilities(self, texts: list[str]) -> list[float]:
        import torch

        self._encoder.eval()
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                logits = self.logits(texts[start:start + 32])
                out += [float(p) for p in torch.softmax(logits, -1)[:, 1]]
        return out

    def predict(self, text: str) -> tuple[str, float]:
        probability = self.probabilities([text])[0]
        return ("refuse" if probability >= self.threshold else "comply"), probability


def encode(tokenizer: Any, texts: list[str], max_tokens: int) -> Any:
    """Token ids for each text; one longer than ``max_tokens`` keeps its head and its tail."""
    room = max_tokens - 2  # [CLS] and [SEP]
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) > room:
            ids = ids[:room // 2] + ids[len(ids) - (room - room // 2):]
        rows.append([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id])
    return tokenizer.pad({"input_ids": rows}, return_tensors="pt")


def _imports() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise JudgeUnavailable("the refusal judge needs torch, transformers and peft: "
                               f"`pip install loragate[judges]` ({exc})") from None
    return torch, transformers, peft


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    # peft asks transformers 5 a deprecated question on every wrap: a warning the user can do
    # nothing about, printed by every gate that judges refusals.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        yield


def _base_dir() -> tuple[Path, str]:
    try:
        from loragate.rag.embeddings import (
            MODEL_DISTRIBUTION,
            EmbeddingModelMissing,
            bundled_model_dir,
        )
    except ImportError as exc:  # numpy missing: the judges extra is not installed
        raise JudgeUnavailable(f"the refusal judge needs `pip install loragate[judges]`: {exc}"
                               ) from None
    try:
        model_dir = bundled_model_dir()
    except EmbeddingModelMissing as exc:
        raise JudgeUnavailable(f"the refusal judge needs its encoder: {exc}") from None
    # The release and the weights' size name the encoder on any install (pip does not keep
    # file times, so the embedding cache's fingerprint would differ from machine to machine).
    from importlib.metadata import version

    size = (model_dir / "model.safetensors").stat().st_size
    return model_dir, f"{MODEL_DISTRIBUTION}=={version(MODEL_DISTRIBUTION)}:{size}"


def fit(examples: list[Labelled], settings: FineTune = FineTune(),
        progress: bool = True) -> RefusalClassifier:
    """Fine-tune the encoder's LoRA adapter and the head on ``examples`` (deterministic for a
    seed on one machine: fixed shuffles, no dropout in the head)."""
    import numpy as np

    if not examples:
        raise ValueError("no labelled answers to fit the refusal judge on")
    torch, transformers, peft = _imports()
    model_dir, _ = _base_dir()
    torch.manual_seed(settings.seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with _quiet_peft():
        encoder = peft.get_peft_model(
            transformers.AutoModel.from_pretrained(model_dir),
            peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                            lora_dropout=settings.dropout, target_modules=list(settings.targets)))
    head = torch.nn.Linear(encoder.config.hidden_size, 2)
    classifier = RefusalClassifier(tokenizer, encoder, head, settings)
    texts = [e.answer for e in examples]
    labels = np.asarray([e.label == "refuse" for e in examples], dtype=np.int64)
    trained = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    optimiser = torch.optim.AdamW(trained, lr=settings.learning_rate, weight_decay=0.01)
    per_epoch = -(-len(texts) // settings.batch_size)
    steps = settings.epochs * per_epoch
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / steps))
    # The classes are weighted to balance them, so the threshold stays at 0.5.
    weight = torch.tensor([1.0, (labels == 0).sum() / max(1, (labels == 1).sum())],
                          dtype=torch.float32)
    bar = _progress(steps, f"fitting the refusal judge on {len(texts)} answers", progress)
    lengths = [len(t) for t in texts]
    encoder.train()
    for epoch in range(settings.epochs):
        for chosen in batches(lengths, settings.batch_size, settings.seed + epoch):
            logits = classifier.logits([texts[i] for i in chosen])
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[chosen]),
                                                     weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            bar.update(1)
    bar.close()
    encoder.eval()
    return classifier


def batches(lengths: list[int], size: int, seed: int) -> list[Any]:
    """One epoch's batches: shuffled, then sorted by length within windows of eight batches,
    so a batch pads to answers of like length (a fit takes about half the time)."""
    import numpy as np

    random = np.random.RandomState(seed)
    order = random.permutation(len(lengths))
    window = size * 8
    out = []
    for start in range(0, len(order), window):
        part = sorted(order[start:start + window], key=lambda i: lengths[i])
        out += [np.asarray(part[i:i + size]) for i in range(0, len(part), size)]
    return [out[i] for i in random.permutation(len(out))]


def _progress(total: int, what: str, shown: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="step", disable=not shown, file=sys.stderr)


def save(classifier: RefusalClassifier, folder: Path, stamp: JudgeStamp) -> None:
    """Write the adapter, the head and the stamp to ``folder``, replacing it whole."""
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        classifier._encoder.save_pretrained(partial)
        (partial / "README.md").unlink(missing_ok=True)  # peft's blank model card
        # The base is always the bundled encoder: no path of this machine in the shipped file.
        config_path = partial / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = MODEL_NAME
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                               encoding="utf-8")
        save_file({k: v.contiguous() for k, v in classifier._head.state_dict().items()},
                  str(partial / "head.safetensors"))
        stamp.write(partial)
        # mkdtemp makes a private folder; a judge in a shared install must be readable by all.
        partial.chmod(0o755)
        for written in partial.iterdir():
            written.chmod(0o644)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def load(folder: Path, settings: FineTune) -> RefusalClassifier:
    """The classifier saved in ``folder`` on the bundled encoder."""
    from safetensors.torch import load_file

    torch, transformers, peft = _imports()
    model_dir, _ = _base_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    with _quiet_peft():
        encoder = peft.PeftModel.from_pretrained(
            transformers.AutoModel.from_pretrained(model_dir), folder)
    head = torch.nn.Linear(encoder.config.hidden_size, 2)
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    encoder.eval()
    return RefusalClassifier(tokenizer, encoder, head, settings)


def fitted_stamp(settings: FineTune, answers: int | None = None) -> JudgeStamp:
    """The stamp of a judge fitted with ``settings`` on the packaged training answers (their
    number when the caller has read them already)."""
    _, base = _base_dir()
    if answers is None:
        answers = len(training_examples())
    return JudgeStamp(training_digest=training_digest(settings), base_model=base,
                      answers=answers,
                      # As JSON gives it back (a tuple reads back as a list).
                      settings=json.loads(json.dumps(asdict(settings))))


@lru_cache(maxsize=1)
def default_classifier() -> RefusalClassifier:
    """The judge fitted on the packaged training set: the shipped copy when it matches the
    training files, settings and encoder; else a copy in the loragate cache, fitted on first
    use."""
    from loragate.artifacts import cache_root

    settings = FineTune()
    _imports()
    examples = training_examples()
    wanted = fitted_stamp(settings, len(examples))
    cached = cache_root() / "judges" / f"refusal-lora-{wanted.training_digest[:16]}"
    for folder in (SHIPPED_DIR, cached):
        if JudgeStamp.read(folder) == wanted:
            try:
                return load(folder, settings)
            except Exception as exc:  # noqa: BLE001 - torn or truncated weights, any reader's error
                raise JudgeUnavailable(
                    f"{folder}: the fitted refusal judge cannot be read "
                    f"({type(exc).__name__}: {str(exc)[:200]}); reinstall loragate, or delete "
                    "the folder if it is in the loragate cache") from None
    print(f"loragate: the shipped refusal judge does not match its training files; fitting it "
          f"again (minutes on a CPU), kept in {cached}", file=sys.stderr)
    classifier = fit(examples, settings)
    # A cache that cannot be written costs the fit next time, nothing more.
    with contextlib.suppress(OSError):
        save(classifier, cached, wanted)
    return classifier


def classifier_verdict(text: str) -> tuple[str, float]:
    return default_classifier().predict(text)


def main() -> int:
    """Refit the shipped judge on the packaged training set."""
    settings = FineTune()
    examples = training_examples()
    stamp = fitted_stamp(settings, len(examples))
    save(fit(examples, settings), SHIPPED_DIR, stamp)
    print(f"wrote {SHIPPED_DIR} ({stamp.answers} answers, digest {stamp.training_digest[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
