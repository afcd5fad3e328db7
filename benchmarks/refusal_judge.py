"""How well the refusal judge generalises to a writer it has not seen.

Leave-one-writer-out cross-validation over the classifier's training files (each file was
written by another hand): fit on the others, judge the one left out; then the form rules alone
and the fitted classifier on the held-out sets. Prints F1 (refusal positive) side by side.

    python benchmarks/refusal_judge.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from loragate.harnesses import refusal_model as rm
    from loragate.judges import calibrate_refusal

    embedder = rm._load_embedder()
    files = [rm.TRAIN_FILE, *rm.EXTRA_TRAIN_FILES]
    examples, groups = [], []
    for index, path in enumerate(files):
        found = rm.read_labelled(path)
        examples += found
        groups += [index] * len(found)
    features = rm.RefusalClassifier(embedder, None).features([e.answer for e in examples])
    labels = np.array([e.label == "refuse" for e in examples], dtype=int)
    groups_array = np.array(groups)
    print("leave-one-writer-out F1 (refusal positive), by the writer left out:")
    for c in (1.0, rm.C, 16.0):
        probabilities = np.zeros(len(labels))
        for group in sorted(set(groups)):
            train, test = groups_array != group, groups_array == group
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
            model.fit(features[train], labels[train])
            probabilities[test] = model.predict_proba(features[test])[:, 1]
        for threshold in (0.3, 0.5):
            predicted = (probabilities >= threshold).astype(int)
            per_writer = [f1_score(labels[groups_array == g], predicted[groups_array == g])
                          for g in sorted(set(groups))]
            chosen = " (chosen)" if (c, threshold) == (rm.C, rm.THRESHOLD) else ""
            print(f"  C={c:<5} threshold {threshold}: F1 {f1_score(labels, predicted):.3f}  "
                  + "  ".join(f"{files[g].name} {f:.3f}" for g, f in enumerate(per_writer))
                  + chosen)
    held_out = [rm.HELDOUT_FILE, ROOT / "tests/data/refusal_final.jsonl",
                ROOT / "tests/data/refusal_untouched.jsonl",
                ROOT / "tests/data/refusal_fresh.jsonl"]
    print("held-out sets (never trained or tuned on):")
    for path in held_out:
        if not path.is_file():
            continue
        rules, model = calibrate_refusal(path, "rules"), calibrate_refusal(path)
        print(f"  {path.name:<26} rules F1 {rules.f1:.3f}  classifier F1 {model.f1:.3f}  "
              f"({model.f1 / rules.f1:.2f}x)  refusals recognised {model.recall:.1%}, "
              f"compliance recognised {model.specificity:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
