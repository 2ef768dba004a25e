"""Accuracy and speed of the secrets inspector on the labelled corpus.

    python bench/eval_secrets.py [--corpus ../shared/corpus/secrets.jsonl.gz] [--per-category]

Rows are split 80/20 by sha256(id) (tune / test); rules are tuned on the 80 % only and the
20 % is reported as the untuned figure. Label 1 = a credential. Every label-0 row in this
corpus is a look-alike (gitleaks false-positive samples, detect-secrets negatives), so the
FPR on label 0 is the hard-negative FPR; it is also broken down by source. Secret text is
never printed: only ids, categories and counts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from guardian.inspectors.secrets import find_secrets  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "secrets.jsonl.gz"


def load(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split_of(row_id: str) -> str:
    return "test" if int(hashlib.sha256(row_id.encode()).hexdigest(), 16) % 100 < 20 else "tune"


def metrics(pairs: list[tuple[int, int]]) -> dict[str, float]:
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    tn = sum(1 for y, p in pairs if not y and not p)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    return {"n": len(pairs), "pos": tp + fn, "neg": fp + tn, "tp": tp, "fp": fp, "fn": fn,
            "precision": precision, "recall": recall, "f1": f1, "fpr": fpr}


def row(name: str, m: dict[str, float]) -> str:
    return (f"{name:<34} {m['n']:>5} {m['pos']:>4} {m['neg']:>4} {m['precision']:>6.3f} {m['recall']:>6.3f} "
            f"{m['f1']:>6.3f} {m['fpr']:>6.3f}  tp={m['tp']} fp={m['fp']} fn={m['fn']}")


HEADER = f"{'split / group':<34} {'n':>5} {'pos':>4} {'neg':>4} {'prec':>6} {'recall':>6} {'f1':>6} {'fpr':>6}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--per-category", action="store_true", help="one line per category (test split)")
    parser.add_argument("--no-second-opinion", action="store_true", help="provider rules only")
    parser.add_argument("--misses", choices=["tune"], help="list ids/categories of errors on the tune split")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus} (pass --corpus PATH); nothing to evaluate")
        return 0
    rows = load(args.corpus)
    second = not args.no_second_opinion
    find_secrets("warm up: api_key = 'Zq3xV9pL2mN8rT4w'", second_opinion=second)

    results: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_group: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    errors: list[tuple[str, str, int]] = []
    elapsed = 0.0
    total_bytes = 0
    for r in rows:
        text = r["text"]
        start = time.perf_counter()
        predicted = int(bool(find_secrets(text, second_opinion=second)))
        elapsed += time.perf_counter() - start
        total_bytes += len(text.encode())
        label = int(r["label"])
        split = split_of(str(r["id"]))
        results[split].append((label, predicted))
        category = str(r.get("category", "?"))
        source = category.split("/", 1)[0]
        by_group[(split, source)].append((label, predicted))
        by_group[(split, "cat:" + category)].append((label, predicted))
        if split == "tune" and label != predicted:
            errors.append((str(r["id"]), category, label))

    print(f"corpus: {args.corpus.name}, {len(rows)} rows; detect-secrets second opinion: {'on' if second else 'off'}")
    print(HEADER)
    for split in ("test", "tune"):
        print(row(f"{split} ({'untuned 20%' if split == 'test' else 'tune 80%'})", metrics(results[split])))
    print("\nhard negatives (every label-0 row is a look-alike), FPR by source:")
    for split in ("test", "tune"):
        for (s, group), pairs in sorted(by_group.items()):
            if s == split and not group.startswith("cat:"):
                print(row(f"{split}: {group}", metrics(pairs)))
    if args.per_category:
        print("\nper category (test split):")
        for (s, group), pairs in sorted(by_group.items()):
            if s == "test" and group.startswith("cat:"):
                print(row(group[4:][:34], metrics(pairs)))
    else:
        print("\nper category (test split, only categories with errors; --per-category for all):")
        for (s, group), pairs in sorted(by_group.items()):
            m = metrics(pairs)
            if s == "test" and group.startswith("cat:") and (m["fp"] or m["fn"]):
                print(row(group[4:][:34], m))
    if args.misses:
        print("\ntune-split errors (id, category, label):")
        for error in errors:
            print(*error)
    print(f"\nmean time: {elapsed * 1000 / (total_bytes / 1024):.3f} ms per KB "
          f"({total_bytes / 1024:.0f} KB, {elapsed * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
