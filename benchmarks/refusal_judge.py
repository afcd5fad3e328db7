"""How well the refusal judge generalises to a writer it has not seen.

Leave-one-writer-out cross-validation over the classifier's training files (each file was
written by another hand): fit on the others, judge the one left out, for the classifier before
and the candidates that replaced it; then the form rules alone and the judge on the held-out
set. Prints F1 (refusal positive) side by side.

    python benchmarks/refusal_judge.py            # about 8 minutes on 2 cores
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
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loragate.harnesses import refusal_model as rm
    from loragate.harnesses.refusal import read
    from loragate.judges import calibrate_refusal

    embedder = rm._load_embedder()
    files = [rm.TRAIN_FILE, *rm.EXTRA_TRAIN_FILES]
    examples, groups = [], []
    for index, path in enumerate(files):
        found = rm.read_labelled(path)
        examples += found
        groups += [index] * len(found)
    texts = [e.answer for e in examples]
    features = rm.RefusalClassifier(embedder, None).features(texts)
    # The rules decide a STOP acknowledgement or a warned decision without the classifier.
    certain = np.array([r.stop_line is not None or r.decision_line is not None
                        for r in map(read, texts)])
    labels = np.array([e.label == "refuse" for e in examples], dtype=int)
    groups_array = np.array(groups)
    pooled_width = 3 * 384  # the pooled sentence embeddings, last in the features
    candidates = {
        "logistic regression, no pooled sentences (the judge before)": (
            lambda: LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000),
            slice(0, features.shape[1] - pooled_width)),
        "logistic regression, standardised": (
            lambda: make_pipeline(StandardScaler(), LogisticRegression(
                C=0.01, class_weight="balanced", max_iter=5000)), slice(None)),
        **{f"RBF SVM C={c}": (lambda c=c: rm.classifier_model(c), slice(None))
           for c in (0.5, rm.C, 2.0)},
    }
    print(f"leave-one-writer-out F1 (refusal positive) over {len(files)} writers, "
          "by the writer left out:")
    for name, (make, columns) in candidates.items():
        probabilities = np.zeros(len(labels))
        for group in sorted(set(groups)):
            train, test = groups_array != group, groups_array == group
            model = make().fit(features[train][:, columns], labels[train])
            probabilities[test] = model.predict_proba(features[test][:, columns])[:, 1]
        for threshold in (0.4, 0.5):
            predicted = np.where(certain, 1, (probabilities >= threshold).astype(int))
            per_writer = [f1_score(labels[groups_array == g], predicted[groups_array == g])
                          for g in sorted(set(groups))]
            chosen = " (chosen)" if name == f"RBF SVM C={rm.C}" and threshold == rm.THRESHOLD \
                else ""
            print(f"  {name}, threshold {threshold}: mean F1 {np.mean(per_writer):.3f}, pooled "
                  f"{f1_score(labels, predicted):.3f}{chosen}\n    "
                  + "  ".join(f"{files[g].stem.removeprefix('refusal_')} {f:.2f}"
                              for g, f in enumerate(per_writer)))
    print("held-out set (never trained or tuned on):")
    rules, model = calibrate_refusal(rm.HELDOUT_FILE, "rules"), calibrate_refusal(rm.HELDOUT_FILE)
    print(f"  {rm.HELDOUT_FILE.name}: rules F1 {rules.f1:.3f}  classifier F1 {model.f1:.3f}  "
          f"refusals recognised {model.recall:.1%}, compliance recognised {model.specificity:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
