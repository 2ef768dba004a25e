"""What the eval scripts share: reading a labelled corpus, its 80/20 split, and the table of
precision / recall / F1 / FPR they print.

One definition of the split matters most: rules and the classifier are tuned on the 80 % and
the 20 % is reported as the untuned figure, so every script must put a row on the same side.
The corpora live outside the repository (../shared/corpus); without them a script prints one
line and exits 0, so `make eval` passes where they are not available (CI).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("test", "tune")
"""Report order: the untuned figure first."""


def load(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file, gzipped when its name ends in `.gz`."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def corpus_missing(corpus: Path, required: Path | None = None, *, hint: str = "PATH", task: str = "evaluate") -> bool:
    """True, after saying so, when `corpus` (or the `required` file in it) does not exist."""
    if (required or corpus).exists():
        return False
    print(f"corpus not found: {corpus} (pass --corpus {hint}); nothing to {task}")
    return True


def id_hash(key: str) -> int:
    """A stable number for a row id: sha256, so no split or placement depends on file order."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16)


def split_of(row_id: str) -> str:
    """'test' (the untuned 20 %: `id_hash % 100 < 20`) or 'tune' (the 80 % rules are tuned on)."""
    return "test" if id_hash(row_id) % 100 < 20 else "tune"


def split_name(split: str) -> str:
    return f"{split} ({'untuned 20%' if split == 'test' else 'tune 80%'})"


def metrics(pairs: list[tuple[int, int]]) -> dict[str, float]:
    """Counts and rates of (label, predicted) pairs; precision is 1 when nothing was flagged."""
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


@dataclass(frozen=True)
class Table:
    """Lines of `metrics` under a header; `width` is the first column's, `clip` cuts longer names."""

    width: int
    first: str = "split / group"
    clip: bool = False

    @property
    def header(self) -> str:
        return (f"{self.first:<{self.width}} {'n':>5} {'pos':>4} {'neg':>4} {'prec':>6} {'recall':>6} {'f1':>6} "
                f"{'fpr':>6}")

    def row(self, name: str, m: dict[str, float]) -> str:
        name = name[: self.width] if self.clip else name
        return (f"{name:<{self.width}} {m['n']:>5} {m['pos']:>4} {m['neg']:>4} {m['precision']:>6.3f} "
                f"{m['recall']:>6.3f} {m['f1']:>6.3f} {m['fpr']:>6.3f}  tp={m['tp']} fp={m['fp']} fn={m['fn']}")
