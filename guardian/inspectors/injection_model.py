"""The shipped prompt-injection classifier: text chunks, hashed features, a linear model.

Injected instructions hide inside long, mostly benign content (an email, a web page, a
table), so text is cut into chunks of one to a few sentences and each chunk is scored on
its own; a text scores as its worst chunk, and a finding points at that chunk.

Features are the hashing trick over the lower-cased, de-obfuscated chunk: character 3- to
5-grams plus word uni- and bi-grams, counted, divided by the square root of the chunk's
number of features. The hashes are computed with numpy over code points (a polynomial
rolling hash, wrapping in uint64), so one text costs a handful of array operations whatever
its number of chunks, and nothing depends on Python's per-process string hashing.
`bench/train_injection.py` trains logistic regression on the output of `chunk_features()`
(this very code), so training and inference cannot drift apart.

The weights ship in `guardian/data/injection_model.npz` (int8, one row per head); no model
is ever downloaded. Heads: `direct` (text from the client: what a user or the model wrote)
and `indirect` (text from servers: tool results, resources, prompts, descriptions, sampling).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from guardian.normalize import normalize

FEATURE_VERSION: Final = 2
"""Bumped whenever the features change: a model file trained on other features is refused."""

BITS: Final = 18
DIM: Final = 1 << BITS
CHAR_NGRAMS: Final = (3, 4, 5)
MAX_CHUNK: Final = 512
"""A chunk never exceeds this many characters (a longer sentence is cut at a space)."""
HEAD_TARGETS: Final = {"direct": 256, "indirect": 0}
"""Per head, sentences are joined into one chunk until it is at least this long: user-side
text is judged a few sentences at a time, content from servers one sentence or line at a time
(measured on the tune split: single sentences suit injected payloads, longer windows suit
jailbreak prompts)."""
RULE_TARGET: Final = 256
"""Rules read windows of a few sentences, so a phrase split over two short lines still matches."""
MAX_WORD: Final = 40

MODEL_FILE: Final = "injection_model.npz"

_P: Final = np.uint64(0x100000001B3)  # FNV prime: odd, so invertible modulo 2**64
_P_INV: Final = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)
_SHIFT: Final = np.uint64(64 - BITS)
_SEED_CHAR: Final = {n: np.uint64(0x51ED270B0D1A3A00 + n) for n in CHAR_NGRAMS}
_SEED_WORD: Final = np.uint64(0x2545F4914F6CDD1D)
_SEED_BIGRAM: Final = np.uint64(0x5851F42D4C957F2D)
_SEP: Final = 0  # code point placed between chunks in the joined analysis string

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# Chunking

_SEGMENT_END = re.compile(r"\n\s*|(?<=[.!?;])\s+|(?<=[\u3002\uff01\uff1f\uff1b])")  # ASCII and CJK sentence ends
"""Where a sentence or line ends (the definition; `segments` runs `_SEGMENT_SCAN`, which finds the same)."""
_SEGMENT_SCAN = re.compile(
    r"\n\s*|\.\s+|!\s+|\?\s+|;\s+|\u3002(?!\n)|\uff01(?!\n)|\uff1f(?!\n)|\uff1b(?!\n)"
)
"""`_SEGMENT_END` with the mark consumed instead of looked behind for, each alternative opening
with its one character: the regex engine then skips to those characters (5x faster on prose).
A match here that starts with an ASCII mark is `_SEGMENT_END`'s match one character later; one
that is a CJK mark is its empty match just after it (not before a newline: the newline's own
match wins)."""
_SPACE = re.compile(r"\s+")


def segments(text: str) -> list[tuple[int, int]]:
    """Sentence or line spans of `text` (whitespace-trimmed), each at most MAX_CHUNK long."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SEGMENT_SCAN.finditer(text):
        end, resume = match.span()
        mark = text[end]
        if mark != "\n":
            end += 1
            if mark not in ".!?;":  # CJK: the sentence keeps its mark and the next starts right after
                resume = end
        if start < end <= start + MAX_CHUNK and not text[start].isspace() and not text[end - 1].isspace():
            spans.append((start, end))  # the usual sentence: nothing to trim or cut
        else:
            _add_segment(text, start, end, spans)
        start = resume
    _add_segment(text, start, len(text), spans)
    return spans


def _add_segment(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_CHUNK:
        cut = text.rfind(" ", start + MAX_CHUNK // 2, start + MAX_CHUNK)
        cut = cut if cut > start else start + MAX_CHUNK
        spans.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        spans.append((start, end))


def chunks(text: str, target: int) -> list[tuple[int, int]]:
    """Spans of consecutive sentences joined until `target` long (never past MAX_CHUNK)."""
    return pack(segments(text), target)


def pack(spans: list[tuple[int, int]], target: int) -> list[tuple[int, int]]:
    """Consecutive segment spans joined until each is at least `target` long (never past MAX_CHUNK)."""
    out: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for start, end in spans:
        if current is None:
            current = (start, end)
        elif current[1] - current[0] < target and end - current[0] <= MAX_CHUNK:
            current = (current[0], end)
        else:
            out.append(current)
            current = (start, end)
    if current is not None:
        out.append(current)
    return out


# ---------------------------------------------------------------------------------------------
# Features


def prepare(chunk: str, clean: bool = False) -> str:
    """The chunk as the model reads it: de-obfuscated (unless known `clean`), lower-cased,
    whitespace collapsed, and every e-mail address read as the same word: attack payloads in
    the training data often name an address, so the model had learnt "an address is an
    attack", which flags contact lines in ordinary results; exfiltration to an address is
    the rules' job."""
    text = (chunk if clean else normalize(chunk)).lower()
    return _SPACE.sub(" ", _EMAIL.sub(" emailaddress ", text)).strip()


_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _mask_addresses(text: str) -> str:
    """`_EMAIL.sub(" emailaddress ", text)`, run only over the runs of address characters
    (word characters and `.+-@`) that hold an @: no match can reach past such a run, so the
    result is the same, and the regex no longer backtracks through every word of the text
    (most of the classifier's cost on a text with one address in it)."""
    at = text.find("@")
    if at < 0:
        return text
    pieces: list[str] = []
    last = 0
    while at >= 0:
        start = at
        while start > last and (text[start - 1].isalnum() or text[start - 1] in "_.+-@"):
            start -= 1
        end = at + 1
        while end < len(text) and (text[end].isalnum() or text[end] in "_.+-@"):
            end += 1
        pieces += [text[last:start], _EMAIL.sub(" emailaddress ", text[start:end])]
        last = end
        at = text.find("@", end)
    pieces.append(text[last:])
    return "".join(pieces)


_ASCII_WORD = np.zeros(128, dtype=bool)
for _c in "abcdefghijklmnopqrstuvwxyz0123456789_":
    _ASCII_WORD[ord(_c)] = True


@lru_cache(maxsize=8192)
def _is_word_char(code: int) -> bool:
    return chr(code).isalnum()


def _word_mask(cp: U64) -> npt.NDArray[np.bool_]:
    mask = _ASCII_WORD[np.minimum(cp, 127)]  # 127 is no word character: every wide one starts False
    wide = np.flatnonzero(cp >= 128)
    if wide.shape[0]:
        codes, where = np.unique(cp[wide], return_inverse=True)
        table = np.array([_is_word_char(int(c)) and not _is_cjk(int(c)) for c in codes], dtype=bool)
        mask[wide] = table[where]
    return mask


def _is_cjk(code: int) -> bool:
    """CJK and kana are written without spaces: their 'words' are left to the character n-grams."""
    return 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF


def _bucket(h: U64, seed: np.uint64 | U64) -> I64:
    mixed = (h ^ seed) * _MIX
    return (mixed >> _SHIFT).astype(np.int64)


Piece = tuple[str, Sequence[tuple[int, int]], bool]
"""(text, chunk spans in it, clean): one text as `prepared_joined` and `InjectionModel.probabilities` read it."""


def prepared_joined(pieces: Iterable[Piece]) -> str:
    """`"\\x00".join(prepare(text[s:e], clean) for every chunk of every piece)`, in one pass.

    Lower-casing, address masking and whitespace collapsing run once over the joined chunks
    instead of a few hundred times over single sentences, and give the same string: none of
    them acts across the separator (it is no space, no address character, and lower-casing's
    final-sigma rule stops at it as at the end of a string), and no chunk contains it
    (normalising removes control characters, and a clean text is its own normalisation).
    """
    parts: list[str] = []
    for text, spans, clean in pieces:
        if clean:
            parts.extend([text[s:e] for s, e in spans])
        else:
            parts.extend([normalize(text[s:e]) for s, e in spans])
    joined = _mask_addresses("\x00".join(parts).lower())
    joined = " ".join(joined.split())  # = _SPACE.sub(" ", joined).strip(): the same whitespace, 3x faster
    return joined.replace(" \x00", "\x00").replace("\x00 ", "\x00")


_POWERS: tuple[U64, U64] = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))


def _powers(n: int) -> tuple[U64, U64]:
    """P**i and P**-i (mod 2**64) for i < n: one table, grown by doubling, instead of two
    cumulative products per call (a prefix of a longer table is the same numbers)."""
    global _POWERS
    forward, inverse = _POWERS
    if forward.shape[0] < n:
        size = max(n, 2 * forward.shape[0], 1 << 14)
        steps = np.full(size, _P, dtype=np.uint64)
        steps[0] = np.uint64(1)
        forward = np.cumprod(steps, dtype=np.uint64)
        steps.fill(_P_INV)
        steps[0] = np.uint64(1)
        inverse = np.cumprod(steps, dtype=np.uint64)
        _POWERS = (forward, inverse)  # one assignment: a concurrent reader sees the old or the new table
    return forward[:n], inverse[:n]


def _keys(joined: str) -> tuple[I64, I64]:
    """(chunk index, feature bucket) of every feature occurrence in prepared chunks joined by
    the separator. A substring's polynomial hash comes from prefix sums in O(1), vectorised:
    hash(a, b) = P**(b-1) * (S[b] - S[a]) with S[j] = sum_{i<j} cp[i] * P**-i (mod 2**64).
    Every hash is mixed into a bucket in one go at the end, each with its kind's seed."""
    narrow: npt.NDArray[np.uint8] | npt.NDArray[np.uint32]
    if joined.isascii():  # the common case: a quarter of the bytes, and a table lookup for words
        narrow = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        word = _ASCII_WORD[narrow]
        cp = narrow.astype(np.uint64)
    else:  # surrogatepass: a lone surrogate (JSON allows "\\ud800") is read as its code point
        narrow = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cp = narrow.astype(np.uint64)
        word = _word_mask(cp)
    n = cp.shape[0]
    separator = narrow == _SEP
    inside = ~separator
    owner = np.cumsum(separator, dtype=np.int64)  # chunk index of each position
    forward, inverse = _powers(n)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(cp * inverse, dtype=np.uint64, out=prefix[1:])
    rows: list[I64] = []
    hashes: list[U64] = []
    seeds: list[np.uint64] = []
    for size in CHAR_NGRAMS:
        count = n - size + 1
        if count <= 0:
            continue
        # Every start at once (slices, no index arrays); keep those whose n-gram stays in one chunk.
        keep = owner[:count] == owner[size - 1 :]
        keep &= inside[:count]
        rows.append(owner[:count][keep])
        hashes.append((forward[size - 1 :] * (prefix[size:] - prefix[:count]))[keep])
        seeds.append(_SEED_CHAR[size])

    # Words: runs of word characters; every other non-space character is a token of its own.
    # Tokens never overlap, so the sorted starts and the sorted ends pair up.
    prev = np.empty_like(word)
    prev[:1] = False
    prev[1:] = word[:-1]
    nxt = np.empty_like(word)
    nxt[-1:] = False
    nxt[:-1] = word[1:]
    other = ~word & (narrow != 32) & inside
    tok_starts = np.flatnonzero((word & ~prev) | other)
    tok_ends = np.flatnonzero((word & ~nxt) | other) + 1
    short = (tok_ends - tok_starts) <= MAX_WORD
    tok_starts, tok_ends = tok_starts[short], tok_ends[short]
    if tok_starts.shape[0]:
        words = forward[tok_ends - 1] * (prefix[tok_ends] - prefix[tok_starts])
        tok_owner = owner[tok_starts]
        same = tok_owner[:-1] == tok_owner[1:]
        rows += [tok_owner, tok_owner[:-1][same]]
        hashes += [words, words[:-1][same] * _P + words[1:][same] * _MIX]
        seeds += [_SEED_WORD, _SEED_BIGRAM]
    if not rows:  # chunks that normalise to nothing (only invisible characters)
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    seed = np.repeat(np.array(seeds, dtype=np.uint64), [h.shape[0] for h in hashes])
    return np.concatenate(rows), _bucket(np.concatenate(hashes), seed)


def chunk_keys(prepared: list[str]) -> tuple[I64, I64]:
    """(chunk index, feature bucket) of every feature occurrence in every prepared chunk.

    A feature's value is its count in the chunk divided by sqrt(occurrences in the chunk): no
    per-chunk de-duplication is needed (it was the single largest cost), and training sums
    duplicate entries exactly the same way.
    """
    if not prepared:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return _keys("\x00".join(prepared))


def chunk_features(
    text: str, target: int, spans: list[tuple[int, int]] | None = None, *, clean: bool = False
) -> tuple[list[tuple[int, int]], I64, I64]:
    """Chunk spans of `text` (computed unless given) and the (chunk index, bucket) pair of each
    feature occurrence. Training calls exactly this. `clean`: the caller knows `normalize(text)
    == text` (the common case), so chunks are not normalised again."""
    if spans is None:
        spans = chunks(text, target)
    if not spans:
        return spans, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, buckets = _keys(prepared_joined([(text, spans, clean)]))
    return spans, rows, buckets


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, slots=True)
class ChunkScore:
    start: int
    end: int
    score: float


class InjectionModel:
    """Logistic regression over hashed features; one weight row per head."""

    def __init__(self, weights: F32, bias: F32, heads: tuple[str, ...], meta: dict[str, Any]) -> None:
        if weights.shape != (len(heads), DIM):
            raise ValueError(f"model weights have shape {weights.shape}, expected {(len(heads), DIM)}")
        self.weights = weights
        self.bias = bias
        self.heads = heads
        self.meta = meta

    def head(self, name: str) -> int:
        return self.heads.index(name)

    def score_chunks(
        self, text: str, head: str, spans: list[tuple[int, int]] | None = None, *, clean: bool = False
    ) -> list[ChunkScore]:
        """Score of each chunk of `text` (the head's chunking unless `spans` are given): a
        probability, shifted per head so that 0.5 is the operating point chosen in training."""
        self.head(head)
        if spans is None:
            spans = chunks(text, HEAD_TARGETS[head])
        if not spans:
            return []
        (probs,) = self.probabilities([(text, spans, clean)], head)
        return [ChunkScore(s, e, float(p)) for (s, e), p in zip(spans, probs, strict=True)]

    def probabilities(self, pieces: Sequence[Piece], head: str) -> list[F64]:
        """The score of every chunk of every piece, as one array per piece: all pieces are
        featurised and scored together, so a message of many strings costs one pass of array
        operations, not one per string. A chunk's score does not depend on its neighbours."""
        flat = self.flat_probabilities(pieces, head)
        ends = np.cumsum([len(spans) for _, spans, _ in pieces])
        return [flat[end - len(spans) : end] for end, (_, spans, _) in zip(ends.tolist(), pieces, strict=True)]

    def flat_probabilities(self, pieces: Sequence[Piece], head: str) -> F64:
        """`probabilities`, the pieces' arrays end to end."""
        h = self.head(head)
        total = sum(len(spans) for _, spans, _ in pieces)
        if total == 0:
            return np.zeros(0, dtype=np.float64)
        rows, buckets = _keys(prepared_joined(pieces))
        count = np.bincount(rows, minlength=total).astype(np.float64)
        dot = np.bincount(rows, weights=self.weights[h][buckets].astype(np.float64), minlength=total)
        logits = dot / np.sqrt(np.maximum(count, 1.0)) + float(self.bias[h])
        probs: F64 = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
        return probs

    def score(self, text: str, head: str) -> float:
        scores = self.score_chunks(text, head)
        return max((c.score for c in scores), default=0.0)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """int8 weights with one scale per head: 256 KB a head before compression."""
        scale = np.maximum(np.abs(self.weights).max(axis=1), 1e-9) / 127.0
        quantized = np.round(self.weights / scale[:, None]).astype(np.int8)
        meta = dict(self.meta, feature_version=FEATURE_VERSION, bits=BITS, heads=list(self.heads))
        np.savez_compressed(
            path,
            weights=quantized,
            scale=scale.astype(np.float32),
            bias=self.bias.astype(np.float32),
            meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> InjectionModel:
        if path is None:
            with resources.as_file(resources.files("guardian") / "data" / MODEL_FILE) as shipped:
                return cls.load(shipped)
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("feature_version") != FEATURE_VERSION or meta.get("bits") != BITS:
                raise ValueError(f"{path.name} was trained on other features (version {meta.get('feature_version')})")
            weights = data["weights"].astype(np.float32) * data["scale"][:, None]
            return cls(weights, data["bias"].astype(np.float32), tuple(meta["heads"]), meta)


_LOCK = threading.Lock()
_SHIPPED: InjectionModel | None = None


def shipped_model() -> InjectionModel:
    """The packaged model, loaded once per process."""
    global _SHIPPED
    if _SHIPPED is None:
        with _LOCK:
            if _SHIPPED is None:
                _SHIPPED = InjectionModel.load()
    return _SHIPPED
