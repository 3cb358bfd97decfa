"""Tokenization: sentence splitting (NLTK Punkt), word tokenization, and the settings that say how.

Tokenizers (``tokenizer=``)
    ``nltk``       sentences by NLTK Punkt (see :class:`SentenceSplitter`; not used for ``lines``, where a
                   line is a sentence), words by ``nltk.word_tokenize(s, preserve_line=True)`` (Treebank
                   style). Default for word level with text/csv/jsonl.
    ``whitespace`` every non-empty line is one sentence, tokens are ``line.split()``: tokens are never
                   split or rewritten (``<unk>`` stays one token). Default for ``lines``.
    ``char``       character level (``level="char"``): tokens are characters.

Lowercasing (``lowercase=``): ``None`` means the tutorial's default, which depends on the tokenizer:
``True`` with ``nltk`` (the tutorial lowercases every comment before ``sent_tokenize``), ``False`` with
``whitespace`` (pre-tokenized corpora are used as they are) and at char level.

At char level there are no start/end tokens: a "sentence" is a line including its ``"\\n"`` (for
``text``, blank lines are kept and joined to the line before them, so the sentences joined reproduce
the text exactly) or a csv/jsonl record plus ``"\\n"``.

:class:`Settings` (format, level, tokenizer, lowercase, column, field, filters) is saved with a corpus
so new text is read and tokenized exactly as the training text was; :func:`sentence_tokens` turns
documents (or sentence texts) into token lists (``list[str]``) under those settings.

Sentence splitting without network: if NLTK's ``punkt_tab`` data is installed it is used; otherwise a
:class:`nltk.tokenize.punkt.PunktTrainer` is trained on the corpus itself (its first
:data:`PUNKT_TRAIN_CHARS` characters). The trained parameters are plain JSON
(:meth:`SentenceSplitter.to_json`), saved with the corpus. NLTK is imported only when one of these is
used, never at import.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from rnnlm.data.readers import (
    FORMATS,
    TextLines,
    join_blank_lines,
    split_paragraphs,
    stream_csv,
    stream_jsonl,
    stream_units,
)
from rnnlm.errors import ConfigError, CorpusError

__all__ = [
    "LEVELS",
    "PUNKT_TRAIN_CHARS",
    "SPLITTERS",
    "TOKENIZERS",
    "SentenceSplitter",
    "Settings",
    "sentence_texts",
    "sentence_tokens",
    "tokenize_sentence",
    "validate_settings",
    "word_tokenize",
]

TOKENIZERS = ("nltk", "whitespace", "char")
LEVELS = ("word", "char")
SPLITTERS = ("auto", "installed", "trained")

#: Punkt is trained on at most this many characters of the corpus (speed; more adds little).
PUNKT_TRAIN_CHARS = 2_000_000


def word_tokenize(sentence: str) -> list[str]:
    """NLTK's Treebank-style word tokenizer on one sentence (``preserve_line=True``: needs no data files)."""
    import nltk

    return nltk.word_tokenize(sentence, preserve_line=True)


# --------------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------------


def _installed_punkt():
    """NLTK's installed English Punkt model (``punkt_tab``), or None when the data is not installed."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return None
    try:
        from nltk.tokenize.punkt import PunktTokenizer
    except ImportError:  # pragma: no cover - nltk < 3.8.2 has no punkt_tab loader
        return None
    try:
        return PunktTokenizer("english")
    except (LookupError, OSError, ValueError):  # pragma: no cover - broken installation
        return None


class SentenceSplitter:
    """NLTK Punkt sentence splitter: the installed ``punkt_tab`` model or one trained on the corpus.

    ``kind`` is ``"installed"`` or ``"trained"``; a trained splitter's parameters round-trip through
    :meth:`to_json` / :meth:`from_json` (plain JSON, stored inside a saved corpus).
    """

    def __init__(self, tokenizer, kind: str, description: str, params: dict | None = None):
        self._tokenizer = tokenizer
        self.kind = kind
        self.description = description
        self._params = params

    @classmethod
    def installed(cls) -> SentenceSplitter | None:
        tok = _installed_punkt()
        if tok is None:
            return None
        return cls(tok, "installed", "NLTK punkt_tab (installed data)")

    @classmethod
    def train(cls, texts: Iterable[str], max_chars: int = PUNKT_TRAIN_CHARS) -> SentenceSplitter:
        """Train Punkt on (at most ``max_chars`` characters of) ``texts``."""
        from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

        parts, n = [], 0
        for t in texts:
            if n >= max_chars:
                break
            parts.append(t[: max_chars - n])
            n += len(parts[-1]) + 2
        sample = "\n\n".join(parts)
        trainer = PunktTrainer()
        trainer.train(sample, finalize=False)
        trainer.finalize_training()
        params = trainer.get_params()
        return cls(
            PunktSentenceTokenizer(params),
            "trained",
            f"NLTK Punkt trained on this corpus ({len(sample)} chars)",
            _params_to_json(params),
        )

    @classmethod
    def get(cls, texts: Iterable[str], mode: str = "auto") -> SentenceSplitter:
        """``mode``: ``auto`` (installed if available, else trained), ``installed`` or ``trained``."""
        if mode not in SPLITTERS:
            raise ConfigError(f"unknown sentence splitter {mode!r} (choose from {', '.join(SPLITTERS)})")
        if mode in ("auto", "installed"):
            found = cls.installed()
            if found is not None:
                return found
            if mode == "installed":
                raise ConfigError(
                    "NLTK's punkt_tab data is not installed (python -m nltk.downloader punkt_tab)"
                )
        return cls.train(texts)

    def split(self, text: str) -> list[str]:
        return self._tokenizer.tokenize(text)

    def to_json(self) -> dict:
        return {"kind": self.kind, "description": self.description, "params": self._params}

    @classmethod
    def from_json(cls, data: dict) -> SentenceSplitter:
        if not isinstance(data, dict):
            raise CorpusError("bad sentence-splitter data (expected a JSON object)")
        if data.get("kind") == "trained" and data.get("params") is not None:
            from nltk.tokenize.punkt import PunktSentenceTokenizer

            try:
                params = _params_from_json(data["params"])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                why = f"{type(e).__name__}: {e}"
                raise CorpusError(f"bad trained sentence-splitter parameters ({why})") from None
            return cls(
                PunktSentenceTokenizer(params),
                "trained",
                str(data.get("description", "NLTK Punkt trained on the corpus")),
                data["params"],
            )
        found = cls.installed()
        if found is None:
            raise CorpusError(
                "this corpus was split with NLTK's installed punkt_tab data, which is missing here"
            )
        return found


def _params_to_json(params) -> dict:
    return {
        "abbrev_types": sorted(params.abbrev_types),
        "collocations": sorted([list(c) for c in params.collocations]),
        "sent_starters": sorted(params.sent_starters),
        "ortho_context": dict(sorted(params.ortho_context.items())),
    }


def _params_from_json(data: dict):
    from nltk.tokenize.punkt import PunktParameters

    strings = [
        data["abbrev_types"], data["sent_starters"], *data["collocations"], list(data["ortho_context"])
    ]
    if not all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in strings):
        raise TypeError("token lists must hold strings")
    if not all(isinstance(v, int) for v in data["ortho_context"].values()):
        raise TypeError("ortho_context values must be integers")
    params = PunktParameters()
    params.abbrev_types = set(data["abbrev_types"])
    params.collocations = {tuple(c) for c in data["collocations"]}
    params.sent_starters = set(data["sent_starters"])
    params.ortho_context = defaultdict(int, data["ortho_context"])
    return params


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """How raw text becomes token lists; saved with a corpus so new text is treated the same way."""

    format: str = "lines"
    level: str = "word"
    tokenizer: str = "whitespace"
    lowercase: bool = False
    column: str = "body"
    field: str = "text"
    drop_containing: str | None = None
    min_length: int | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> Settings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def needs_splitter(self) -> bool:
        """True when sentences are found by Punkt (word level, nltk tokenizer, not ``lines``)."""
        return self.level == "word" and self.tokenizer == "nltk" and self.format != "lines"

    def stream(self, path, info: dict, checked: bool = False) -> tuple[Iterator[str], bool]:
        """:func:`~rnnlm.data.readers.stream_units` of a file read with these settings."""
        return stream_units(
            path,
            self.format,
            info,
            level=self.level,
            tokenizer=self.tokenizer,
            lowercase=self.lowercase,
            column=self.column,
            field=self.field,
            checked=checked,
        )

    def punkt_sample(self, path) -> Iterator[str]:
        """The (lowercased) documents Punkt trains on, lazily: :meth:`SentenceSplitter.train` reads only
        its first :data:`PUNKT_TRAIN_CHARS` characters. Plain text is one document (its beginning)."""
        if self.format == "text":
            parts, n = [], 0
            for line in TextLines(path):
                parts.append(line.lower() if self.lowercase else line)
                n += len(parts[-1])
                if n >= PUNKT_TRAIN_CHARS:
                    break
            yield "".join(parts)
            return
        if self.format == "csv":
            docs = stream_csv(path, self.column, checked=True)
        else:
            docs = stream_jsonl(path, self.field, checked=True)
        with closing(docs):
            for doc in docs:
                yield doc.lower() if self.lowercase else doc


def validate_settings(data) -> None:
    """Check corpus settings read from a file (a checkpoint or prepared corpus); ConfigError if bad."""
    if not isinstance(data, dict):
        raise ConfigError(f"corpus settings must be a JSON object, got {type(data).__name__}")
    choices = {"format": FORMATS, "level": LEVELS, "tokenizer": TOKENIZERS}
    for key, allowed in choices.items():
        if key in data and data[key] not in allowed:
            raise ConfigError(f"corpus setting {key}={data[key]!r} is not one of {', '.join(allowed)}")
    for key, kinds in (("lowercase", (bool,)), ("column", (str,)), ("field", (str,)),
                       ("drop_containing", (str, type(None))), ("min_length", (int, type(None)))):
        value = data.get(key)
        if key in data and (
            not isinstance(value, kinds)
            or (key != "lowercase" and isinstance(value, bool))
            or (key == "min_length" and value is not None and value < 0)
        ):
            raise ConfigError(f"corpus setting {key}={value!r} has the wrong type")


# --------------------------------------------------------------------------------------------------
# Documents -> sentences -> tokens
# --------------------------------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines without their terminator (``\\n`` or ``\\r\\n``; nothing else counts as a line break)."""
    return [ln.removesuffix("\r") for ln in text.split("\n")]


def sentence_texts(unit: str, s: Settings, splitter: SentenceSplitter | None) -> list[str]:
    """The sentences (as strings, lowercased if asked) of one document: a CSV/JSONL record, a paragraph
    or a whole text (read as :meth:`Settings.stream` would read its file)."""
    if s.lowercase:
        unit = unit.lower()
    if s.level == "char":
        if s.format == "text":  # lines, blank lines joined to the line before: joined, the text
            return list(join_blank_lines([unit]))
        if s.format == "lines":
            return [ln + "\n" for ln in _split_lines(unit) if ln.strip()]
        return [unit if unit.endswith("\n") else unit + "\n"]  # one csv/jsonl record
    if s.tokenizer == "whitespace" or s.format == "lines":
        return [ln for ln in _split_lines(unit) if ln.strip()]
    assert splitter is not None, "the nltk tokenizer needs a sentence splitter"
    parts = split_paragraphs(unit) if s.format == "text" else [unit]
    return [sent for part in parts if part.strip() for sent in splitter.split(part) if sent.strip()]


def tokenize_sentence(sentence: str, s: Settings) -> list[str]:
    if s.level == "char":
        return list(sentence)
    if s.tokenizer == "whitespace":
        return sentence.split()
    return word_tokenize(sentence)


def sentence_tokens(
    units: Iterable[str],
    presplit: bool,
    s: Settings,
    splitter: SentenceSplitter | None,
    drop_containing: str | None = None,
    min_length: int | None = None,
) -> Iterator[list[str] | None]:
    """Per sentence of ``units`` (documents, or sentence texts when ``presplit``), in order: its tokens,
    or None when a filter drops it (sentences without tokens are skipped silently, as they were never
    sentences). ``drop_containing`` is tested on the (lowercased) sentence text, ``min_length`` on the
    number of tokens."""
    tokenize = str.split if s.level == "word" and s.tokenizer == "whitespace" else None
    for unit in units:
        for text in (unit,) if presplit else sentence_texts(unit, s, splitter):
            if drop_containing is not None and drop_containing in text:
                yield None
                continue
            tokens = tokenize(text) if tokenize is not None else tokenize_sentence(text, s)
            if not tokens:
                continue
            if min_length is not None and len(tokens) < min_length:
                yield None
                continue
            yield tokens

