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


# ---------------------------------------------------------------------------------------------
# Chunking

_SEGMENT_END = re.compile(r"\n\s*|(?<=[.!?;])\s+|(?<=[\u3002\uff01\uff1f\uff1b])")  # ASCII and CJK sentence ends
_SPACE = re.compile(r"\s+")


def segments(text: str) -> list[tuple[int, int]]:
    """Sentence or line spans of `text` (whitespace-trimmed), each at most MAX_CHUNK long."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SEGMENT_END.finditer(text):
        _add_segment(text, start, match.start(), spans)
        start = match.end()
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


_ASCII_WORD = np.zeros(128, dtype=bool)
for _c in "abcdefghijklmnopqrstuvwxyz0123456789_":
    _ASCII_WORD[ord(_c)] = True


@lru_cache(maxsize=8192)
def _is_word_char(code: int) -> bool:
    return chr(code).isalnum()


def _word_mask(cp: U64) -> npt.NDArray[np.bool_]:
    mask = np.zeros(cp.shape, dtype=bool)
    ascii_ = cp < 128
    mask[ascii_] = _ASCII_WORD[cp[ascii_].astype(np.int64)]
    if not ascii_.all():
        wide = ~ascii_
        codes = np.unique(cp[wide])
        table = np.array([_is_word_char(int(c)) and not _is_cjk(int(c)) for c in codes], dtype=bool)
        mask[wide] = table[np.searchsorted(codes, cp[wide])]
    return mask


def _is_cjk(code: int) -> bool:
    """CJK and kana are written without spaces: their 'words' are left to the character n-grams."""
    return 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF


def _bucket(h: U64, seed: np.uint64) -> I64:
    mixed = (h ^ seed) * _MIX
    return (mixed >> _SHIFT).astype(np.int64)


def _joined(prepared: list[str]) -> tuple[U64, I64]:
    """Code points of the chunks joined by a separator, and the chunk index of each position."""
    joined = "\x00".join(prepared)
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    owner = np.cumsum(cp == _SEP).astype(np.int64)
    return cp, owner


def _hashes(cp: U64) -> tuple[U64, U64]:
    """Prefix sums that give any substring's polynomial hash in O(1), vectorised:
    hash(a, b) = P**(b-1) * (S[b-1] - S[a-1]) with S[j] = sum_{i<=j} cp[i] * P**-i (mod 2**64)."""
    n = cp.shape[0]
    inv = np.full(n, _P_INV, dtype=np.uint64)
    inv[0] = np.uint64(1)
    inv_pow = np.cumprod(inv, dtype=np.uint64)
    fwd = np.full(n, _P, dtype=np.uint64)
    fwd[0] = np.uint64(1)
    pow_ = np.cumprod(fwd, dtype=np.uint64)
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(cp * inv_pow, dtype=np.uint64)])
    return prefix, pow_


def _substring_hash(prefix: U64, pow_: U64, starts: I64, ends: I64) -> U64:
    return pow_[ends - 1] * (prefix[ends] - prefix[starts])


def chunk_keys(prepared: list[str]) -> tuple[I64, I64]:
    """(chunk index, feature bucket) of every feature occurrence in every prepared chunk.

    A feature's value is its count in the chunk divided by sqrt(occurrences in the chunk): no
    per-chunk de-duplication is needed (it was the single largest cost), and training sums
    duplicate entries exactly the same way.
    """
    if not prepared:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cp, owner = _joined(prepared)
    n = cp.shape[0]
    prefix, pow_ = _hashes(cp)
    parts_chunk: list[I64] = []
    parts_bucket: list[I64] = []
    for size in CHAR_NGRAMS:
        if n < size:
            continue
        starts = np.arange(n - size + 1, dtype=np.int64)
        keep = owner[starts] == owner[starts + size - 1]
        keep &= cp[starts] != _SEP
        starts = starts[keep]
        parts_chunk.append(owner[starts])
        parts_bucket.append(_bucket(_substring_hash(prefix, pow_, starts, starts + size), _SEED_CHAR[size]))

    # Words: runs of word characters; every other non-space character is a token of its own.
    # Tokens never overlap, so the sorted starts and the sorted ends pair up.
    word = _word_mask(cp)
    prev = np.concatenate([[False], word[:-1]])
    nxt = np.concatenate([word[1:], [False]])
    other = ~word & (cp != 32) & (cp != _SEP)
    tok_starts = np.flatnonzero((word & ~prev) | other)
    tok_ends = np.flatnonzero((word & ~nxt) | other) + 1
    short = (tok_ends - tok_starts) <= MAX_WORD
    tok_starts, tok_ends = tok_starts[short], tok_ends[short]
    if tok_starts.shape[0]:
        words = _substring_hash(prefix, pow_, tok_starts, tok_ends)
        tok_owner = owner[tok_starts]
        parts_chunk.append(tok_owner)
        parts_bucket.append(_bucket(words, _SEED_WORD))
        same = tok_owner[:-1] == tok_owner[1:]
        pairs = words[:-1][same] * _P + words[1:][same] * _MIX
        parts_chunk.append(tok_owner[:-1][same])
        parts_bucket.append(_bucket(pairs, _SEED_BIGRAM))
    return np.concatenate(parts_chunk), np.concatenate(parts_bucket)


def chunk_features(
    text: str, target: int, spans: list[tuple[int, int]] | None = None, *, clean: bool = False
) -> tuple[list[tuple[int, int]], I64, I64]:
    """Chunk spans of `text` (computed unless given) and the (chunk index, bucket) pair of each
    feature occurrence. Training calls exactly this. `clean`: the caller knows `normalize(text)
    == text` (the common case), so chunks are not normalised again."""
    if spans is None:
        spans = chunks(text, target)
    rows, buckets = chunk_keys([prepare(text[s:e], clean) for s, e in spans])
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
        h = self.head(head)
        spans, rows, buckets = chunk_features(text, HEAD_TARGETS[head], spans, clean=clean)
        if not spans:
            return []
        count = np.bincount(rows, minlength=len(spans)).astype(np.float64)
        dot = np.bincount(rows, weights=self.weights[h, buckets].astype(np.float64), minlength=len(spans))
        logits = dot / np.sqrt(np.maximum(count, 1.0)) + float(self.bias[h])
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
        return [ChunkScore(s, e, float(p)) for (s, e), p in zip(spans, probs, strict=True)]

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
