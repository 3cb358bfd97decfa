""":func:`prepare`: a corpus file (or a known corpus name) read, tokenized and encoded into a :class:`Corpus`.

This is the tutorial's part 2 preprocessing (and part 4's filtering), made robust::

    comments = read_reddit_csv("reddit-comments-2015-08.csv")          # column "body"
    sentences = [s for c in comments for s in sent_tokenize(c.lower())]
    tokens = [[SENTENCE_START] + word_tokenize(s) + [SENTENCE_END] for s in sentences]
    vocab = the vocab_size-1 most frequent tokens + UNKNOWN_TOKEN
    X, Y = s[:-1], s[1:]                                                  # int32 arrays

Formats are described in :mod:`rnnlm.data.readers`, tokenizers, lowercasing and sentence splitting
in :mod:`rnnlm.data.tokenize`, the vocabulary in :mod:`rnnlm.data.vocab`.

Large corpora: :func:`prepare` streams. It reads one line (or CSV record) at a time and encodes each
sentence at once into a flat int32 array (:class:`~rnnlm.data.vocab.TokenIds`), so peak memory is the
encoded corpus -- ids (N,) int32, 4 bytes a token, and offsets (S + 1,) int64, 8 bytes a sentence --
plus an entry per distinct token; never the text or its token strings (50M tokens: 51 s, +400 MB;
docs/benchmarks-corpus.md). ``workers=N`` tokenizes in N processes (same result): each worker holds
the settings and splitter (sent once), gets chunks of documents and returns their token lists; the
parent consumes them in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np

from rnnlm.data.corpus import Corpus
from rnnlm.data.readers import FORMATS, detect_format, report, require_content
from rnnlm.data.tokenize import LEVELS, SPLITTERS, TOKENIZERS, SentenceSplitter, Settings, sentence_tokens
from rnnlm.data.vocab import CHAR_UNKNOWN_TOKEN, SENTENCE_END, SENTENCE_START, TokenIds, check_vocab_size
from rnnlm.errors import ConfigError, CorpusError

__all__ = ["WORKER_CHUNK_CHARS", "prepare"]

#: Characters of text per task sent to a tokenizer worker.
WORKER_CHUNK_CHARS = 1 << 18


def _check_int(name: str, value, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


# Parallel tokenization: the state of a worker process (see the module docstring).
_WORKER: dict = {}


def _worker_init(settings: dict, splitter: dict | None, drop_containing, min_length) -> None:
    _WORKER.update(
        s=Settings.from_json(settings),
        splitter=SentenceSplitter.from_json(splitter) if splitter is not None else None,
        drop=drop_containing,
        min_length=min_length,
    )


def _worker_tokens(units: list[str], presplit: bool) -> list:
    w = _WORKER
    return list(sentence_tokens(units, presplit, w["s"], w["splitter"], w["drop"], w["min_length"]))


def _parallel_tokens(pool, units, presplit: bool, workers: int):
    """:func:`~rnnlm.data.tokenize.sentence_tokens` computed by ``pool``, in input order; at most
    ``4 * workers`` chunks in flight, so memory stays bounded however large the input (``Pool.imap``
    would read all input at once)."""
    pending: deque = deque()

    def chunks():
        chunk, n = [], 0
        for unit in units:
            chunk.append(unit)
            n += len(unit)
            if n >= WORKER_CHUNK_CHARS:
                yield chunk
                chunk, n = [], 0
        if chunk:
            yield chunk

    for chunk in chunks():
        pending.append(pool.apply_async(_worker_tokens, (chunk, presplit)))
        if len(pending) >= 4 * workers:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


def prepare(
    source,
    level: str = "word",
    vocab_size: int | None = 8000,
    lowercase: bool | None = None,
    format: str = "auto",
    tokenizer: str | None = None,
    column: str = "body",
    field: str = "text",
    unk_token: str | None = None,
    max_sentences: int | None = None,
    drop_containing: str | None = None,
    min_length: int | None = None,
    splitter: str = "auto",
    progress: bool = False,
    workers: int = 1,
) -> Corpus:
    """Read, tokenize and encode a corpus file or a known corpus name (see :mod:`rnnlm.data.datasets`).

    Args:
        source: a path, or a known corpus name (``"reddit"``, ``"tinyshakespeare"``).
        level: ``"word"`` or ``"char"``.
        vocab_size: keep the ``vocab_size - 1`` most frequent tokens plus the unknown token (``None``:
            all). At char level the default 8000 keeps every character of ordinary text.
        lowercase: ``None`` = the tutorial's default (True with the nltk tokenizer, else False).
        format: ``auto|text|lines|csv|jsonl`` (module docstring).
        tokenizer: ``nltk|whitespace|char``; ``None`` = ``nltk`` at word level except ``whitespace`` for
            ``lines``, ``char`` at char level.
        column / field: the CSV column / JSONL field holding the text.
        unk_token: the unknown token; ``None`` = ``<unk>`` if the corpus contains it, else
            ``UNKNOWN_TOKEN`` (``U+FFFD`` at char level).
        max_sentences: keep only the first N sentences (after filtering); reading stops there.
        drop_containing: drop sentences containing this substring (the tutorial's part 4 drops
            ``"http"``); tested on the (lowercased) sentence text.
        min_length: drop sentences with fewer than this many tokens (words, or characters at char level;
            SENTENCE_START/END not counted).
        splitter: Punkt model: ``auto`` (installed punkt_tab if present, else trained on the corpus),
            ``installed`` or ``trained``.
        progress: show a progress bar (stderr, only on a terminal) while reading.
        workers: tokenize in this many processes (worth it for the nltk tokenizer, which is slow; the
            whitespace and char tokenizers are faster than the inter-process traffic). The corpus is
            identical to a serial run's.

    Streaming: the file is read once, one line (or CSV record) at a time, and each sentence is encoded
    at once into a growing int32 array of provisional ids (in order of first occurrence); the
    vocabulary is built from the counts of those ids and the array is then renumbered in place. Peak
    memory is the encoded corpus (4 bytes a token, 8 a sentence) plus one entry per distinct token --
    not the text, not the token strings (docs/benchmarks-corpus.md). A trained Punkt model reads the
    first :data:`PUNKT_TRAIN_CHARS` characters once more.

    ``stats`` holds: source, format, format_reason, level, tokenizer, lowercase, sentence_splitter,
    documents (read), sentences, dropped_sentences, tokens (including START/END), words (excluding them),
    unique_tokens (the tutorial's "unique words tokens", START/END included), vocab_size,
    requested_vocab_size, least_frequent_word, least_frequent_count, unknown_token, unknown_tokens,
    unknown_rate (= unknown_tokens / words), replacement_chars, and for CSV rows/truncated_rows/skipped_rows.
    """
    from rnnlm.data import datasets

    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    if tokenizer is not None and tokenizer not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {tokenizer!r} (choose from {', '.join(TOKENIZERS)})")
    if splitter not in SPLITTERS:
        raise ConfigError(f"unknown sentence splitter {splitter!r} (choose from {', '.join(SPLITTERS)})")
    check_vocab_size(vocab_size)
    _check_int("max_sentences", max_sentences, 1)
    _check_int("min_length", min_length, 0)
    _check_int("workers", workers, 1)
    if drop_containing == "":
        raise ConfigError("drop_containing must not be empty")
    if level == "char":
        if tokenizer not in (None, "char"):
            raise ConfigError(f"level 'char' needs tokenizer 'char', not {tokenizer!r}")
        tokenizer = "char"
        if unk_token is not None and len(unk_token) != 1:
            raise ConfigError(f"at char level the unknown token must be one character, got {unk_token!r}")
    elif tokenizer == "char":
        raise ConfigError("tokenizer 'char' needs level 'char' (--level char)")
    if unk_token is not None and unk_token in (SENTENCE_START, SENTENCE_END):
        raise ConfigError(f"the unknown token cannot be {unk_token!r}")

    path = datasets.resolve(source, kind="corpus")
    if format == "auto":
        fmt, reason = detect_format(path)
    else:
        fmt, reason = format, "given"
    if tokenizer is None:
        tokenizer = "whitespace" if fmt == "lines" else "nltk"
    if lowercase is None:
        lowercase = tokenizer == "nltk"
    settings = Settings(
        format=fmt,
        level=level,
        tokenizer=tokenizer,
        lowercase=bool(lowercase),
        column=column,
        field=field,
        drop_containing=drop_containing,
        min_length=min_length,
    )
    require_content(path)

    split = None
    if settings.needs_splitter:
        with closing(settings.punkt_sample(path)) as sample:
            split = SentenceSplitter.get(sample, splitter)

    info: dict = {}
    units, presplit = settings.stream(path, info, checked=True)
    counted = _count(units, info)
    tokens = TokenIds(wrap=level == "word")
    dropped = 0
    bar = _byte_progress(progress, path)
    with ExitStack() as stack:
        stack.callback(counted.close)
        if workers > 1:
            import multiprocessing
            import sys

            # fork (no __main__ guard needed in a user's script) unless JAX is loaded: its threads
            # would be copied half-alive into the children; then spawn.
            method = "spawn" if "jax" in sys.modules else "fork"
            pool = stack.enter_context(
                multiprocessing.get_context(method).Pool(
                    workers,
                    initializer=_worker_init,
                    initargs=(
                        settings.to_json(),
                        split.to_json() if split is not None else None,
                        drop_containing,
                        min_length,
                    ),
                )
            )
            sentences = _parallel_tokens(pool, counted, presplit, workers)
        else:
            sentences = sentence_tokens(counted, presplit, settings, split, drop_containing, min_length)
        for sentence in sentences:
            if sentence is None:
                dropped += 1
                continue
            tokens.add(sentence)
            if bar is not None and len(tokens) % 4096 == 0:
                bar.update(info["bytes_read"] - bar.n)
            if max_sentences is not None and len(tokens) >= max_sentences:
                break
    if bar is not None:
        bar.close()
    report(path, info)
    if not len(tokens):
        why = f" (all {dropped} were dropped by the filters)" if dropped else ""
        raise CorpusError(f"{path}: no sentences found{why}")

    if level == "word":
        unk = unk_token or tokens.detect_unk()
        vocab, ids, offsets, n_distinct = tokens.vocabulary(vocab_size, unk, (SENTENCE_START, SENTENCE_END))
    else:
        vocab, ids, offsets, n_distinct = tokens.vocabulary(vocab_size, unk_token or CHAR_UNKNOWN_TOKEN)
    corpus = Corpus.from_arrays(vocab, ids, offsets, level, settings=settings.to_json(), splitter=split)
    base = {
        "source": str(path),
        "format": fmt,
        "format_reason": reason,
        "level": level,
        "tokenizer": tokenizer,
        "lowercase": bool(lowercase),
        "sentence_splitter": split.description if split is not None else None,
        "documents": 1 if fmt == "text" else info.get("documents", 0),
        "dropped_sentences": dropped,
        **vocab.stats(n_distinct, vocab_size),
        "replacement_chars": info.get("replacement_chars", 0),
    }
    for key in ("rows", "truncated_rows", "skipped_rows"):
        if key in info:
            base[key] = info[key]
    corpus.stats = corpus.count_stats(base)
    return corpus


def _count(units: Iterator[str], info: dict) -> Generator[str, None, None]:
    """Pass ``units`` through, counting them in ``info["documents"]``; closing it closes ``units``."""
    info["documents"] = 0
    with closing(units):
        for unit in units:
            info["documents"] += 1
            yield unit


def _byte_progress(enabled: bool, path: Path):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=path.stat().st_size, desc="reading", unit="B", unit_scale=True, disable=None, leave=False
    )
