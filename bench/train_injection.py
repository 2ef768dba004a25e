"""Train the prompt-injection classifier that ships in guardian/data/injection_model.npz.

    python bench/train_injection.py [--corpus ../shared/corpus] [--out guardian/data/injection_model.npz]

Deterministic (fixed seeds, no randomness in the solver). Rows are split 80/20 by sha256(id)
(`int(hexdigest, 16) % 100 < 20` = test) and only the 80 % tune split is used: 5-fold
cross-validation on it picks each head's operating point, then the model is fitted on all of
it. The 20 % test split is only scored at the end, for the record (bench/eval_injection.py
reports it in full). scikit-learn is a training-time dependency only; the features are
`guardian.inspectors.injection_model.chunk_features`, the code that runs in the gateway.

Heads and their training data (chunks are labelled, a document scores as its worst chunk):
- `direct`: prompt_injection_direct.jsonl (every chunk carries its row's label) plus
  project-written injections and trigger-word negatives (bench/injection_synthetic.py).
- `indirect`: prompt_injection_indirect.jsonl, where a chunk is positive when it overlaps the
  injected payload and negative otherwise (the rest of the email, code answer or table is
  clean context); the direct corpus's attacks as extra positives and its benign prompts as
  extra negatives; project-written injections and negatives inserted into the tune split's
  clean contexts, and project-written tool descriptions and tool output as negatives.
Rows licensed "no LICENSE file" are used for training only through hashed features; no text
from them is stored anywhere.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import injection_synthetic as synthetic  # noqa: E402
from bench.corpus import corpus_missing, id_hash, load, split_of  # noqa: E402
from guardian.inspectors.injection_model import DIM, HEAD_TARGETS, InjectionModel, chunk_features  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_OUT = REPO / "guardian" / "data" / "injection_model.npz"
SEED = 20261124
C = {"direct": 30.0, "indirect": 30.0}
"""Inverse regularisation strength per head (chosen by cross-validation on the tune split)."""
TARGET_FPR = {"direct": 0.015, "indirect": 0.015}
"""Cross-validated false-positive rate each head's 0.5 score is set to (below the issue's
2 % / 3 % bounds, leaving room for the spread between folds and the test split)."""
FOLDS = 5
USER_TEXT_AS_CONTENT_WEIGHT = 1.0
"""Weight of the direct corpus's benign prompts as negatives of the content head. BIPIA's
payloads are ordinary requests ("suggest weekend getaways"), so without these the head learns
that any question in a tool result is an injection: a support ticket asking "how do I extend
my card?" scored as one. With them: tune-split CV recall 0.80 -> 0.77 at the same FPR, while
ordinary text from other sources is flagged far less (presidio sentences 6.1 % -> 2.0 %, real
tool descriptions 14.5 % -> 6.2 %, BFCL arguments 2.2 % -> 1.2 %). Those three rates were
looked at to choose this weight, so they are not untuned figures."""


def fold_of(key: str) -> int:
    return id_hash("fold:" + key) % FOLDS


@dataclass
class Doc:
    """One training document: its chunks' features and labels (-1 = left out of training)."""

    rows: np.ndarray
    buckets: np.ndarray
    labels: np.ndarray
    fold: int
    label: int
    scored: bool
    """A corpus row (scored in cross-validation), not augmentation."""
    category: str = ""
    weight: float = 1.0


_WORD = re.compile(r"[^\W\d_]{2,}")
_CODE_START = re.compile(r"\s*(?:import|from|def|class|for|while|if|with|return|print|#|```|[{}\[\]()])")


def is_prose(chunk: str) -> bool:
    """A sentence of words (the instruction), not a code line or a fence around the payload."""
    if _CODE_START.match(chunk) or len(_WORD.findall(chunk)) < 3:
        return False
    plain = sum(ch.isalpha() or ch.isspace() or ch in ".,;:'?!-" for ch in chunk)
    return plain / max(len(chunk), 1) >= 0.85


def make_doc(text: str, target: int, label: int, fold: int, *, payload: tuple[int, int] | None = None,
             prose_only: bool = False, whole_payload: bool = False, scored: bool = True, category: str = "",
             weight: float = 1.0) -> Doc:
    """Chunk labels: with a payload, its prose chunks are positive, its code lines and fences are
    left out (they are not the instruction; `whole_payload` marks every chunk of it instead),
    the context is negative; an injected text without a marked payload (`prose_only`) has its
    prose chunks positive and the rest left out."""
    spans, rows, buckets = chunk_features(text, target)
    labels = np.full(len(spans), label, dtype=np.int64)
    if label == 1 and payload is not None:
        labels = np.array([(1 if whole_payload or is_prose(text[s:e]) else -1)
                           if min(e, payload[1]) > max(s, payload[0]) else 0 for s, e in spans], dtype=np.int64)
    elif label == 1 and prose_only:
        labels = np.array([1 if is_prose(text[s:e]) else -1 for s, e in spans], dtype=np.int64)
    return Doc(rows, buckets, labels, fold, label, scored, category, weight)


def payload_span(row: dict[str, Any]) -> tuple[int, int] | None:
    payload = (row.get("injected_payload") or "").strip()
    if not payload:
        return None
    start = row["text"].find(payload)
    return (start, start + len(payload)) if start >= 0 else None


def build(corpus: Path) -> dict[str, list[Doc]]:
    rng = random.Random(SEED)
    direct_rows = [r for r in load(corpus / "prompt_injection_direct.jsonl") if split_of(str(r["id"])) == "tune"]
    indirect_rows = [r for r in load(corpus / "prompt_injection_indirect.jsonl") if split_of(str(r["id"])) == "tune"]
    direct_t, indirect_t = HEAD_TARGETS["direct"], HEAD_TARGETS["indirect"]

    direct = [make_doc(r["text"], direct_t, int(r["label"]), fold_of(str(r["id"])), category=r["category"])
              for r in direct_rows]
    for i, text in enumerate(synthetic.injections(rng, 400)):
        direct.append(make_doc(text, direct_t, 1, i % FOLDS, scored=False))
    for i, text in enumerate(synthetic.benign(rng, 400)):
        direct.append(make_doc(text, direct_t, 0, i % FOLDS, scored=False))

    indirect: list[Doc] = []
    for r in indirect_rows:
        # Folds group rows by payload: BIPIA inserts one payload into many contexts.
        key = (r.get("injected_payload") or "").strip() or str(r["id"])
        indirect.append(make_doc(r["text"], indirect_t, int(r["label"]), fold_of(key), payload=payload_span(r),
                                 prose_only=True, category=r["category"]))
    for r in direct_rows:
        if int(r["label"]) == 1:
            indirect.append(make_doc(r["text"], direct_t, 1, fold_of(str(r["id"])), scored=False))
        elif USER_TEXT_AS_CONTENT_WEIGHT > 0:
            indirect.append(make_doc(r["text"], indirect_t, 0, fold_of(str(r["id"])), scored=False,
                                     weight=USER_TEXT_AS_CONTENT_WEIGHT))
    clean = [r for r in indirect_rows if int(r["label"]) == 0]
    for text in synthetic.injections(rng, 400):
        context = rng.choice(clean)
        doc_text, span = synthetic.insert(context["text"], text, rng)
        indirect.append(make_doc(doc_text, indirect_t, 1, fold_of(str(context["id"])), payload=span,
                                 whole_payload=True, scored=False))
    for text in synthetic.benign(rng, 300):
        context = rng.choice(clean)
        doc_text, _ = synthetic.insert(context["text"], text, rng)
        indirect.append(make_doc(doc_text, indirect_t, 0, fold_of(str(context["id"])), scored=False))
    for i, text in enumerate(synthetic.tool_text(rng, 200)):
        indirect.append(make_doc(text, indirect_t, 0, i % FOLDS, scored=False))
    return {"direct": direct, "indirect": indirect}


def matrix(docs: list[Doc]) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Chunk feature matrix (value = count / sqrt(chunk's feature count), as at inference),
    chunk labels, the document index of each chunk, and each chunk's sample weight."""
    rows, cols, labels, owner, weights = [], [], [], [], []
    offset = 0
    for index, doc in enumerate(docs):
        rows.append(doc.rows + offset)
        cols.append(doc.buckets)
        labels.append(doc.labels)
        owner.append(np.full(len(doc.labels), index))
        weights.append(np.full(len(doc.labels), doc.weight))
        offset += len(doc.labels)
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = np.bincount(r, minlength=offset)
    values = 1.0 / np.sqrt(np.maximum(counts[r], 1))
    x = sp.csr_matrix((values, (r, c)), shape=(offset, DIM))
    x.sum_duplicates()
    return x, np.concatenate(labels), np.concatenate(owner), np.concatenate(weights)


def fit(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, c: float) -> LogisticRegression:
    keep = y >= 0
    model = LogisticRegression(C=c, solver="liblinear", tol=1e-6, random_state=SEED)
    return model.fit(x[keep], y[keep], sample_weight=w[keep])


def doc_scores(probs: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    np.maximum.at(out, owner, probs)
    return out


def cross_validate(docs: list[Doc], c: float) -> np.ndarray:
    """Out-of-fold document scores of the scored (corpus) documents."""
    x, y, owner, w = matrix(docs)
    folds = np.array([d.fold for d in docs])
    chunk_fold = folds[owner]
    scores = np.zeros(len(docs))
    for fold in range(FOLDS):
        train = chunk_fold != fold
        model = fit(x[train], y[train], w[train], c)
        held = chunk_fold == fold
        probs = model.predict_proba(x[held])[:, 1]
        scores_f = doc_scores(probs, owner[held], len(docs))
        scores[folds == fold] = scores_f[folds == fold]
    return scores


def operating_point(scores: np.ndarray, labels: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate (score >= threshold) is at most target_fpr."""
    negatives = np.sort(scores[labels == 0])[::-1]
    allowed = int(np.floor(target_fpr * len(negatives)))
    return float(np.nextafter(negatives[allowed], 1.0)) if allowed < len(negatives) else 0.0


def summary(name: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> str:
    predicted = scores >= threshold
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    pos, neg = int((labels == 1).sum()), int((labels == 0).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / pos if pos else float("nan")
    return (f"{name:<28} n={len(labels):>4} recall={recall:.3f} precision={precision:.3f} "
            f"fpr={fp / neg if neg else float('nan'):.3f} (tp={tp} fp={fp} pos={pos} neg={neg})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if corpus_missing(args.corpus, args.corpus / "prompt_injection_direct.jsonl", hint="DIR", task="train"):
        return 0
    started = time.perf_counter()
    docs = build(args.corpus)
    heads = ("direct", "indirect")
    weights = np.zeros((len(heads), DIM), dtype=np.float32)
    bias = np.zeros(len(heads), dtype=np.float32)
    meta: dict[str, Any] = {"seed": SEED, "C": C, "target_fpr": TARGET_FPR, "head_targets": HEAD_TARGETS,
                            "operating_points": {}, "training_chunks": {}}
    print("5-fold cross-validation on the tune split (documents scored by their worst chunk):")
    for h, head in enumerate(heads):
        head_docs = docs[head]
        scored = [i for i, d in enumerate(head_docs) if d.scored]
        cv = cross_validate(head_docs, C[head])[scored]
        labels = np.array([head_docs[i].label for i in scored])
        threshold = operating_point(cv, labels, TARGET_FPR[head])
        print(summary(f"{head} (cv, tune 80%)", cv, labels, threshold) + f"  operating point p={threshold:.3f}")
        hard = np.array([head_docs[i].category.startswith("benign_hard_negative") for i in scored])
        if hard.any():
            print(summary(f"{head} hard negatives (cv)", cv[hard], labels[hard], threshold))
        x, y, _, w = matrix(head_docs)
        model = fit(x, y, w, C[head])
        weights[h] = model.coef_[0].astype(np.float32)
        # Shift the bias so that score 0.5 is the operating point: one `threshold` option then
        # means the same thing for both heads.
        logit = float(np.log(threshold / (1.0 - threshold))) if 0.0 < threshold < 1.0 else 0.0
        bias[h] = float(model.intercept_[0]) - logit
        meta["operating_points"][head] = round(threshold, 6)
        meta["training_chunks"][head] = int((y >= 0).sum())
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    InjectionModel(weights, bias, heads, meta).save(out)
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} "
          f"({out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - started:.0f} s")

    # For the record: the untuned 20 % with the saved (int8) model at the default threshold 0.5.
    shipped = InjectionModel.load(out)
    for head, name in (("direct", "prompt_injection_direct.jsonl"), ("indirect", "prompt_injection_indirect.jsonl")):
        rows = [r for r in load(args.corpus / name) if split_of(str(r["id"])) == "test"]
        scores = np.array([shipped.score(r["text"], head) for r in rows])
        labels = np.array([int(r["label"]) for r in rows])
        print(summary(f"{head} (test 20%, int8 model)", scores, labels, 0.5))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
