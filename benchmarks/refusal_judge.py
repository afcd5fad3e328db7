"""How well the refusal judge generalises to a writer it has not seen.

Leave-one-writer-out: fit on every training file but one (each file was written by another
hand), judge the one left out. Side by side, on the same folds: a classifier on the frozen
encoder's sentence embeddings (logistic regression on the mean-pooled all-MiniLM-L6-v2
vectors: what an embedding judge gives without fitting the encoder) and the judge itself, the
encoder fine-tuned with LoRA. Then the form rules alone and the shipped judge on the held-out
set. Prints F1 with refusal the positive class.

    python benchmarks/refusal_judge.py                 # writers c and i: ~21 min, 2 cores
    python benchmarks/refusal_judge.py --writers all   # every writer: about 2.5 hours
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", nargs="+", default=["c", "i"],
                        help="training files to leave out in turn (suffixes), or 'all'")
    args = parser.parse_args()

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from loragate.harnesses import refusal_model as rm
    from loragate.harnesses.refusal import read
    from loragate.judges import calibrate_refusal
    from loragate.rag.embeddings import load_embedder

    by_writer = {path.stem.removeprefix("refusal_train").lstrip("_") or "a": path
                 for path in rm.training_files()}
    chosen = list(by_writer) if args.writers == ["all"] else args.writers
    unknown = sorted(set(chosen) - set(by_writer))
    if unknown:
        parser.error(f"no training file for {unknown}; there are {sorted(by_writer)}")
    embedder = load_embedder()
    print("leave-one-writer-out F1 (refusal positive), the rules' STOP and warned-decision "
          "forms counted as refusals in both:")
    print(f"  {'writer':8} {'answers':>7} {'frozen + LR':>12} {'LoRA judge':>11} {'fit':>6}")
    scores: dict[str, list[float]] = {"frozen": [], "lora": []}
    for writer in chosen:
        test = rm.read_labelled(by_writer[writer])
        train = [e for name, path in by_writer.items() if name != writer
                 for e in rm.read_labelled(path)]
        truth = np.array([e.label == "refuse" for e in test])
        certain = np.array([r.stop_line is not None or r.decision_line is not None
                            for r in (read(e.answer) for e in test)])

        def vectors(examples: list[rm.Labelled]) -> np.ndarray:
            return embedder.embed([rm.prose(e.answer) for e in examples])

        frozen = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(
            vectors(train), [e.label == "refuse" for e in train])
        frozen_says = frozen.predict_proba(vectors(test))[:, 1] >= 0.5
        started = time.perf_counter()
        judge = rm.fit(train, progress=False)
        lora_says = np.array(judge.probabilities([e.answer for e in test])) >= judge.threshold
        seconds = time.perf_counter() - started
        for name, says in (("frozen", frozen_says), ("lora", lora_says)):
            scores[name].append(f1_score(truth, certain | says))
        print(f"  {writer:8} {len(test):7d} {scores['frozen'][-1]:12.3f} "
              f"{scores['lora'][-1]:11.3f} {seconds:5.0f}s", flush=True)
    print(f"  {'mean':8} {'':7} {np.mean(scores['frozen']):12.3f} {np.mean(scores['lora']):11.3f}")
    print("held-out set (never fitted or tuned on), the shipped judge:")
    rules, model = calibrate_refusal(rm.HELDOUT_FILE, "rules"), calibrate_refusal(rm.HELDOUT_FILE)
    print(f"  {rm.HELDOUT_FILE.name}: rules F1 {rules.f1:.3f}  judge F1 {model.f1:.3f}  "
          f"refusals recognised {model.recall:.1%}, compliance recognised {model.specificity:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
