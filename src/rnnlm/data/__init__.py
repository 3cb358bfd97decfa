"""Data: corpus files read, tokenized and encoded; minibatches. No graph engine here; NLTK is imported
only when a sentence splitter or the nltk word tokenizer is used.

Modules, from the file to the batch:

- :mod:`~rnnlm.data.datasets` -- known data files (reddit, tinyshakespeare, the tutorial's model):
  where they are, verified downloads.
- :mod:`~rnnlm.data.readers` -- formats (csv, jsonl, text, lines), format detection, the streaming
  readers, :class:`CorpusWarning`; binary files are refused.
- :mod:`~rnnlm.data.tokenize` -- sentence splitting (NLTK Punkt), word tokenization, the settings
  saved with a corpus.
- :mod:`~rnnlm.data.vocab` -- :class:`Vocabulary` and the one ranking of tokens; the special tokens.
- :mod:`~rnnlm.data.corpus` -- :class:`Corpus` (ids (N,) int32 + offsets (S + 1,) int64; split,
  save/load ``.npz`` or the memory-mapped ``.json`` format).
- :mod:`~rnnlm.data.mapped` -- the memory-mapped format (``NAME.json`` + ``NAME.ids.npy`` uint16/uint32 +
  ``NAME.offsets.npy``) and reading ids in slices, never whole.
- :mod:`~rnnlm.data.encoded` -- :class:`EncodedText` (new text encoded with a corpus's vocabulary).
- :mod:`~rnnlm.data.pipeline` -- :func:`prepare`: a file or known name to a :class:`Corpus`, streamed.
- :mod:`~rnnlm.data.batching` -- padded minibatches (T, B) int32 and masks for training, made lazily.
"""

from rnnlm.data.corpus import CORPUS_FILE_FORMAT, CORPUS_FILE_VERSION, Corpus, EncodedText
from rnnlm.data.pipeline import prepare
from rnnlm.data.readers import (
    FORMATS,
    KNOWN_UNK_MARKERS,
    CorpusWarning,
    detect_format,
    read_jsonl,
    read_lines,
    read_reddit_csv,
    read_text,
)
from rnnlm.data.tokenize import (
    LEVELS,
    PUNKT_TRAIN_CHARS,
    SPLITTERS,
    TOKENIZERS,
    SentenceSplitter,
    validate_settings,
    word_tokenize,
)
from rnnlm.data.vocab import CHAR_UNKNOWN_TOKEN, SENTENCE_END, SENTENCE_START, UNKNOWN_TOKEN, Vocabulary

__all__ = [
    "CHAR_UNKNOWN_TOKEN",
    "CORPUS_FILE_FORMAT",
    "CORPUS_FILE_VERSION",
    "FORMATS",
    "KNOWN_UNK_MARKERS",
    "LEVELS",
    "PUNKT_TRAIN_CHARS",
    "SENTENCE_END",
    "SENTENCE_START",
    "SPLITTERS",
    "TOKENIZERS",
    "UNKNOWN_TOKEN",
    "Corpus",
    "CorpusWarning",
    "EncodedText",
    "SentenceSplitter",
    "Vocabulary",
    "detect_format",
    "prepare",
    "read_jsonl",
    "read_lines",
    "read_reddit_csv",
    "read_text",
    "validate_settings",
    "word_tokenize",
]
