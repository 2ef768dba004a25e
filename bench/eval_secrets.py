"""Accuracy and speed of the secrets inspector on the labelled corpus.

    python bench/eval_secrets.py [--corpus ../shared/corpus/secrets.jsonl.gz] [--per-category]
    python bench/eval_secrets.py --misses tune [--show]     # tune-split errors, masked
    python bench/eval_secrets.py --misses test              # test-split errors: ids and categories only

Rows are split 80/20 by sha256(id) (tune / test); rules are tuned on the 80 % only and the
20 % is reported as the untuned figure. Label 1 = a credential. Every label-0 row in this
corpus is a look-alike (gitleaks false-positive samples, detect-secrets negatives), so the
FPR on label 0 is the hard-negative FPR; it is also broken down by source. Secret text is
never printed: only ids, categories and counts, and with `--show` (tune split only) each
error's text masked to its shape (letters and digits as x/X/9, names left readable). The test
split's errors are listed by id and category only, never shown: its rows are not looked at.

Target (the issue): recall >= 0.90 at FPR <= 1 % on the test split.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.corpus import SPLITS, Table, corpus_missing, load, metrics, split_name, split_of  # noqa: E402
from guardian.inspectors.secrets import find_secrets, looks_like_words  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "secrets.jsonl.gz"
TABLE = Table(34)


def shape_only(value: str) -> str:
    """Character classes only (x, X, 9): the shape of a value, nothing of the value."""
    return re.sub(r"[a-z]", "x", re.sub(r"[A-Z]", "X", re.sub(r"[0-9]", "9", value)))


_NAME = re.compile(
    r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z_.\-]{0,40}(?=[\"'`\]]?[ \t]*(?:[=:,>]|\.=|\?=))"  # name = / name:
    r"|(?<=<)/?[A-Za-z_][A-Za-z_.\-]{0,40}(?=>)"  # <name> </name>
    r"|(?<=--)[A-Za-z][A-Za-z\-]{0,40}"  # --flag
)


def mask(text: str) -> str:
    """`text` with every letter and digit replaced by its class (x, X, 9), except names: a word
    (no digits, built of word-like parts) followed by `=`, `:`, `=>`, ..., inside `<...>` or after
    `--`. Values are never shown, not even a one-word password, only the names around them."""
    keep = [m.span() for m in _NAME.finditer(text) if looks_like_words(m.group(0))]
    out, last = [], 0
    for start, end in keep:
        out.append(shape_only(text[last:start]))
        out.append(text[start:end])
        last = end
    out.append(shape_only(text[last:]))
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--per-category", action="store_true", help="one line per category (test split)")
    parser.add_argument("--no-second-opinion", action="store_true", help="provider rules only")
    parser.add_argument("--misses", choices=["tune", "test"], help="list ids/categories of a split's errors")
    parser.add_argument("--show", action="store_true",
                        help="with --misses tune: each error's text and matched spans, masked to their shape")
    args = parser.parse_args(argv)
    if args.show and args.misses != "tune":
        parser.error("--show only with --misses tune: the test split's rows are never shown")
    if corpus_missing(args.corpus):
        return 0
    rows = load(args.corpus)
    second = not args.no_second_opinion
    # Warm up both layers (detect-secrets imports its plugins and filters on first use).
    find_secrets("warm up: api_key = 'Zq3xV9pL2mN8rT4wKd7sY1bH'", second_opinion=second)

    results: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_group: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    errors: list[tuple[str, str, int, str]] = []
    elapsed = 0.0
    total_bytes = 0
    for r in rows:
        text = r["text"]
        start = time.perf_counter()
        found = find_secrets(text, second_opinion=second)
        elapsed += time.perf_counter() - start
        predicted = int(bool(found))
        total_bytes += len(text.encode())
        label = int(r["label"])
        split = split_of(str(r["id"]))
        results[split].append((label, predicted))
        category = str(r.get("category", "?"))
        source = category.split("/", 1)[0]
        by_group[(split, source)].append((label, predicted))
        by_group[(split, "cat:" + category)].append((label, predicted))
        if split == args.misses and label != predicted:
            shown = ""
            if args.show:
                spans = " ".join(f"{kind}[{shape_only(text[a:b])}]" for kind, a, b in found)
                shown = f"{spans}\n    {mask(text)[:600]!r}"
            errors.append((str(r["id"]), category, label, shown))

    print(f"corpus: {args.corpus.name}, {len(rows)} rows; detect-secrets second opinion: {'on' if second else 'off'}")
    print(TABLE.header)
    for split in SPLITS:
        print(TABLE.row(split_name(split), metrics(results[split])))
    print("\nhard negatives (every label-0 row is a look-alike), FPR by source:")
    for split in SPLITS:
        for (s, group), pairs in sorted(by_group.items()):
            if s == split and not group.startswith("cat:"):
                print(TABLE.row(f"{split}: {group}", metrics(pairs)))
    if args.per_category:
        print("\nper category (test split):")
        for (s, group), pairs in sorted(by_group.items()):
            if s == "test" and group.startswith("cat:"):
                print(TABLE.row(group[4:][:34], metrics(pairs)))
    else:
        print("\nper category (test split, only categories with errors; --per-category for all):")
        for (s, group), pairs in sorted(by_group.items()):
            m = metrics(pairs)
            if s == "test" and group.startswith("cat:") and (m["fp"] or m["fn"]):
                print(TABLE.row(group[4:][:34], m))
    if args.misses:
        print(f"\n{args.misses}-split errors (id, category, label):")
        for row_id, category, label, shown in errors:
            print(row_id, category, label, *([shown] if args.show else []))
    print(f"\nmean time: {elapsed * 1000 / (total_bytes / 1024):.3f} ms per KB "
          f"({total_bytes / 1024:.0f} KB, {elapsed * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
