"""Fuzzing the corpus readers and the CLI with generated bad input (issue 8).

The contract under test: whatever the input, ``rnnlm`` never shows a traceback; it exits 0 when
the input is valid, otherwise 2 with exactly one line ``rnnlm: error: ...`` on stderr (the last;
warnings before it are ``rnnlm: warning: ...``) saying what was wrong and where (the file, and the
line when known), and it leaves no output or temporary file behind.

Each hypothesis test is bounded (``max_examples`` small, no deadline). Commands that would
train stop before the first step (``Trainer.fit`` is replaced), so a valid flag combination costs
a corpus and an uncompiled model, never a compile.
"""

from __future__ import annotations

import io
import json
import string
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnlm.cli.app import main
from rnnlm.data import Corpus, SentenceSplitter, prepare

FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
WORDS = "the cat sat on a mat while dogs ran far away from home today".split()
CORPUS_TEXT = (
    "\n".join(" ".join(WORDS[(i + k) % len(WORDS)] for k in range(2 + i % 6)) for i in range(30)) + "\n"
)


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def check_clean(rc, err, *, must_fail=None, mention=()) -> str | None:
    """The error contract; returns the error line (None on success)."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    errors = [ln for ln in lines if ln.startswith("rnnlm: error: ")]
    assert rc in (0, 2), (rc, err)
    if must_fail is not None:
        assert rc == (2 if must_fail else 0), (rc, err)
    if rc == 0:  # (a successful command may print notes or a summary on stderr)
        assert not errors, err
        return None
    assert all(ln.startswith("rnnlm: ") for ln in lines), err
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for m in mention:
        assert str(m) in errors[0], (m, errors[0])
    return errors[0]


def no_leftovers(folder: Path, allowed=()) -> None:
    left = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert left == [], left


def new_dir() -> tempfile.TemporaryDirectory:
    """A fresh folder per hypothesis example (tmp_path is per test, not per example)."""
    return tempfile.TemporaryDirectory()


# ==================================================================================================
# rnnlm data prepare: file contents
# ==================================================================================================


def prepare_file(data: bytes, name: str, *flags):
    """Run `data prepare` on a file holding ``data``; checks the contract and the output file."""
    with new_dir() as d:
        d = Path(d)
        src = d / name
        src.write_bytes(data)
        out = d / "out" / "c.npz"
        out.parent.mkdir()
        rc, stdout, err = run("data", "prepare", src, "--out", out, "--json", *flags)
        line = check_clean(rc, err)
        if rc == 0:
            c = Corpus.load(out)
            assert len(c) >= 1 and json.loads(stdout)["sentences"] == len(c)
            no_leftovers(out.parent, allowed=("c.npz",))
        else:
            no_leftovers(out.parent)
        return rc, line, stdout, err


@FUZZ
@given(
    data=st.binary(max_size=3000),
    fmt=st.sampled_from(["auto", "text", "lines", "csv", "jsonl"]),
    level=st.sampled_from(["word", "char"]),
    ext=st.sampled_from(["txt", "csv", "jsonl", "bin"]),
)
def test_random_bytes(data, fmt, level, ext):
    rc, line, _, _ = prepare_file(
        data, f"random.{ext}", "--format", fmt, "--level", level, "--splitter", "trained"
    )
    if rc == 2:
        assert f"random.{ext}" in line  # every failure here is about the file


_CSV_CELL = st.text(alphabet=st.sampled_from(list('ab ,"\n\r') + ["é", "\x00", "\t"]), max_size=12)


@FUZZ
@given(
    header=st.lists(
        st.sampled_from(["body", "Body", "id", "text", " body ", '"body"', ""]), min_size=1, max_size=3
    ),
    rows=st.lists(st.lists(_CSV_CELL, min_size=0, max_size=4), max_size=8),
    quote=st.lists(st.booleans(), min_size=4, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 400)),
)
def test_malformed_csv(header, rows, quote, cut):
    lines = [",".join(header)]
    for row in rows:
        cells = [(f'"{c}"' if quote[i % 4] else c) for i, c in enumerate(row)]  # unescaped quotes on purpose
        lines.append(",".join(cells))
    text = "\n".join(lines)
    if cut is not None:
        text = text[:cut]
    rc, line, _, _ = prepare_file(text.encode("utf-8"), "comments.csv", "--tokenizer", "whitespace")
    if rc == 2:
        assert "comments.csv" in line
        if " line " in line:  # a line number must point into the file
            n = int(line.split(" line ")[1].split(":")[0])
            assert 1 <= n <= text.count("\n") + text.count("\r") + 1


_GOOD = st.builds(
    lambda w: json.dumps({"text": " ".join(w), "id": 1}),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
)
_BAD = st.sampled_from(
    [
        '{"text": ',
        "not json",
        "[1, 2]",
        '"just a string"',
        '{"body": "no text field"}',
        '{"text": 3}',
        '{"text": ["a"]}',
        "{'text': 'single quotes'}",
        '{"text": "a"} trailing',
        "[" * 5000,
    ]
)
_NEUTRAL = st.sampled_from(["", "   ", '{"text": null}', '{"text": "   "}'])


@FUZZ
@given(kinds=st.lists(st.sampled_from(["good", "bad", "neutral"]), min_size=1, max_size=12), data=st.data())
def test_jsonl_errors_name_the_first_bad_line(kinds, data):
    lines = [data.draw({"good": _GOOD, "bad": _BAD, "neutral": _NEUTRAL}[k]) for k in kinds]
    rc, line, _, _ = prepare_file(
        ("\n".join(lines) + "\n").encode(), "docs.jsonl", "--tokenizer", "whitespace"
    )
    if "bad" in kinds:
        first = kinds.index("bad") + 1
        assert rc == 2 and f"docs.jsonl: line {first}:" in line, (lines, line)
    elif "good" in kinds:
        assert rc == 0
    elif all(not ln.strip() for ln in lines):
        assert rc == 2 and "docs.jsonl: file is empty" in line
    else:
        assert rc == 2 and "docs.jsonl: no non-empty 'text' values" in line


@FEW
@given(
    text=st.text(
        alphabet=st.sampled_from(list(string.punctuation) + [" ", "\n", "\t", "…", "¿", "—"]), max_size=400
    ),
    how=st.sampled_from(
        [("--format", "text", "--splitter", "trained"), ("--format", "lines"), ("--level", "char")]
    ),
)
def test_only_punctuation(text, how):
    rc, line, stdout, _ = prepare_file(text.encode(), "punct.txt", *how)
    if not text.strip():
        assert rc == 2 and "punct.txt: file is empty" in line
    else:
        assert rc == 0 and json.loads(stdout)["tokens"] > 0


@FEW
@given(
    parts=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffd"),
                max_size=30,
            ),
            st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16-le", "shift_jis"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mixed_encodings_are_decoded_with_replacement_and_reported(parts):
    data = b"\n".join(t.encode(enc, errors="replace") for t, enc in parts) + b"\nplain words here\n"
    rc, line, stdout, err = prepare_file(data, "mixed.txt", "--format", "lines")
    assert rc == 0  # undecodable bytes are a warning, never an error
    replaced = json.loads(stdout)["replacement_chars"]
    try:
        data.decode("utf-8")
        assert replaced == 0 and "undecodable" not in err
    except UnicodeDecodeError:
        assert replaced > 0 and f"mixed.txt: {replaced} undecodable byte sequence(s)" in err


@pytest.mark.parametrize(
    "how",
    [
        ("--format", "lines"),
        ("--format", "text", "--splitter", "trained"),
        ("--level", "char", "--format", "lines"),
    ],
)
def test_huge_single_line(how):
    rng = np.random.default_rng(0)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), 60_000)]
    if "text" in how:  # sentences for Punkt, no newline anywhere
        words = [w + "." if i % 12 == 11 else w for i, w in enumerate(words)]
    data = " ".join(words).encode()  # ~250 KB in one line, no final newline
    rc, _, stdout, _ = prepare_file(data, "oneline.txt", *how)
    assert rc == 0
    stats = json.loads(stdout)
    assert stats["sentences"] == (1 if "lines" in how else 5000)
    assert stats["words"] == (len(data) + 1 if "char" in how else 60_000 + (5000 if "text" in how else 0))


# ==================================================================================================
# rnnlm data prepare: flags
# ==================================================================================================

PUNKT_INSTALLED = SentenceSplitter.installed() is not None
# flag -> strategy of (values, valid?) given the other choices; validity that depends on other flags is
# decided in _prepare_flags_valid.
_PREPARE_FLAGS = {
    "--vocab-size": ["3", "50", str(10**9), "2", "0", "-5", "abc", "1e3"],
    "--max-sentences": ["1", "5", "0", "-1"],
    "--min-length": ["0", "1", "1000", "-1"],
    "--drop-containing": ["zz", "", " "],
    "--format": ["lines", "text", "auto", "xml"],
    "--tokenizer": ["whitespace", "nltk", "char", "spacy"],
    "--level": ["word", "char", "byte"],
    "--unk-token": ["<unk>", "?", "SENTENCE_START"],
    "--splitter": ["trained", "auto", "installed", "magic"],
    "--lowercase": [None],
    "--no-lowercase": [None],
}


def _prepare_flags_valid(f: dict) -> bool:
    level = f.get("--level", "word")
    tok = f.get("--tokenizer")
    if f.get("--vocab-size", "50") in ("2", "0", "-5", "abc", "1e3"):
        return False
    if f.get("--max-sentences", "1") in ("0", "-1") or f.get("--min-length", "0") in ("1000", "-1"):
        return False
    if f.get("--drop-containing", "zz") in ("", " "):  # "" is refused; every sentence has a space
        return False
    if f.get("--format") == "xml" or tok == "spacy" or level == "byte" or f.get("--splitter") == "magic":
        return False
    if level == "char" and tok not in (None, "char"):
        return False
    if level == "word" and tok == "char":
        return False
    unk = f.get("--unk-token")
    if unk == "SENTENCE_START" or (level == "char" and unk is not None and len(unk) != 1):
        return False
    uses_punkt = level == "word" and tok in (None, "nltk") and f.get("--format", "auto") in ("text", "auto")
    if f.get("--splitter") == "installed" and uses_punkt and not PUNKT_INSTALLED:
        return False
    return True


@FUZZ
@given(chosen=st.dictionaries(st.sampled_from(sorted(_PREPARE_FLAGS)), st.integers(0, 7), max_size=5))
def test_prepare_flag_combinations(chosen):
    flags = {k: _PREPARE_FLAGS[k][i % len(_PREPARE_FLAGS[k])] for k, i in chosen.items()}
    argv = []
    for k, v in flags.items():
        argv += [k] if v is None else [k, v]
    rc, line, _, _ = prepare_file(CORPUS_TEXT.encode(), "corpus.txt", *argv)
    assert rc == (0 if _prepare_flags_valid(flags) else 2), (flags, line)


# ==================================================================================================
# rnnlm data info: damaged prepared corpora
# ==================================================================================================

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("prepared")
    src = d / "c.txt"
    src.write_text("Hello there. How are you?\n\nFine, thanks. Hello again!\n")
    return prepare(src, splitter="trained").save(d / "c.npz")


def _meta_of(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(arrays["meta"].tobytes().decode())


@FUZZ
@given(how=st.sampled_from(["truncate", "flip", "meta", "array"]), data=st.data())
def test_info_on_damaged_corpus_files(prepared, how, data):
    with new_dir() as d:
        path = Path(d) / "damaged.npz"
        raw = bytearray(prepared.read_bytes())
        arrays, meta = _meta_of(prepared)
        if how == "truncate":
            path.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw) - 1))]))
        elif how == "flip":
            for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=5)):
                raw[pos] ^= 0xFF
            path.write_bytes(bytes(raw))
        else:
            if how == "meta":
                key = data.draw(
                    st.sampled_from(["format", "version", "level", "vocab", "stats", "settings", "splitter"])
                )
                sub = data.draw(
                    st.sampled_from(
                        [
                            None,
                            "index_to_word",
                            "counts",
                            "unknown_token",
                            "format",
                            "tokenizer",
                            "sentences",
                            "params",
                        ]
                    )
                )
                if sub is not None and isinstance(meta.get(key), dict):
                    meta[key][sub] = data.draw(_JSON)
                else:
                    meta[key] = data.draw(_JSON)
                arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
            else:
                key = data.draw(st.sampled_from(["ids", "offsets", "meta"]))
                arrays[key] = data.draw(
                    st.sampled_from(
                        [
                            arrays[key].astype(np.float32),
                            arrays[key][:-1],
                            arrays[key].reshape(1, -1),
                            np.array([], np.int32),
                            arrays[key].astype(np.int64) * 1000 + 7,
                            -arrays[key].astype(np.int64),
                        ]
                    )
                )
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        rc, out, err = run("data", "info", path, "--json")
        if check_clean(rc, err, mention=["damaged.npz"]) is None:
            stats = json.loads(out)
            assert stats["sentences"] >= 0 and stats["vocab_size"] >= 3
            run("data", "info", path)  # the text view of the same stats must not crash either
            assert "Traceback" not in err


# ==================================================================================================
# rnnlm train: flags and files, rejected before any training
# ==================================================================================================


@pytest.fixture
def no_fit(monkeypatch):
    """`rnnlm train` stops where training would start; records that it got there."""
    import rnnlm.training.trainer

    reached = []

    def fit(self, callback=None):
        reached.append(self)
        self.state["stopped"] = "fuzz"
        return self.state

    monkeypatch.setattr(rnnlm.training.trainer.Trainer, "fit", fit)
    return reached


# value -> valid? (None: decided by _train_flags_valid from the other flags)
_TRAIN_FLAGS = {
    "--hidden": {"4": True, "0": False, "-3": False, "abc": False, str(10**8): False},
    "--layers": {"2": True, "0": False},
    "--model": {"rnn": True, "lstm": True, "cnn": False},
    "--embedding": {"0": None, "3": True, "-1": False},
    "--dropout": {"0.5": True, "1": False, "-0.1": False, "nan": False},
    "--lr": {"0.01": True, "0": False, "-1": False, "nan": False, "inf": False},
    "--clip": {"0": True, "1": True, "-1": False, "nan": False},
    "--epochs": {"0": True, "2": True, "-1": False},
    "--max-steps": {"1": True, "0": False},
    "--batch-size": {"1": True, "3": True, "0": False, str(10**12): False},
    "--bptt": {"4": True, "0": False},
    "--max-length": {"2": True, "8": True, "1": False},
    "--anneal": {"1": True, "0.5": True, "0": False, "1.5": False, "nan": False},
    "--patience": {"2": True, "-1": False},
    "--time-budget": {"30s": True, "1h": True, "0": False, "abc": False, "-1m": False},
    "--valid-every": {"3": True, "-1": False},
    "--save-every": {"2": True, "-2": False},
    "--on-nan": {"stop": True, "ignore": False},
    "--optimizer": {"sgd": True, "rmsprop": True, "lion": False},
    "--activation": {"relu": True, "gelu": False},
    "--gate": {"hard_sigmoid": True},
    "--task": {"fill": None, "lm": True},
    "--tie-embeddings": {None: None},
    "--batching": {"stream": None, "sentences": True},
    "--valid-fraction": {"0.2": True, "1": False, "1.5": False, "nan": False},
    "--bptt-truncate": {"3": True, "-1": True, "0": False, "-2": False},
    "--vocab-size": {"5": True, "2": False},
    "--level": {"char": None},
    "--tokenizer": {"nltk": None},
    "--device": {"gpu": None},
    "--linker": {"c": None},
    "--resume": {"/nonexistent/ck.npz": False},
}


def _train_flags_valid(f: dict) -> bool:
    for k, v in f.items():
        if _TRAIN_FLAGS[k][v] is False:
            return False
    if "--tie-embeddings" in f and (f.get("--embedding") == "0" or f.get("--task") == "fill"):
        return False
    if f.get("--task") == "fill" and f.get("--batching") == "stream":
        return False  # the fill model trains on sentences
    if f.get("--level") == "char" and f.get("--tokenizer") == "nltk":
        return False
    if f.get("--device") == "gpu" and f.get("--linker") == "c":
        return False  # the device needs the jax linker
    if f.get("--bptt-truncate") == "3" and f.get("--linker") != "c":
        from rnnlm import engine

        if engine.default_linker() == "jax":
            return False  # truncated scan gradients are refused under the jax linker
    if f.get("--device") == "gpu":
        from rnnlm import engine

        try:
            engine.select_device("gpu")
        except Exception:
            return False  # no GPU here: a clear error
        return True
    return True


def _train(corpus_path: Path, out: Path, *flags):
    return run(
        "train",
        corpus_path,
        "--format",
        "lines",
        "--out",
        out,
        "--no-progress",
        "--hidden",
        "6",
        "--embedding",
        "4",
        "--batch-size",
        "4",
        "--test-fraction",
        "0",
        *flags,
    )


@FUZZ
@given(chosen=st.dictionaries(st.sampled_from(sorted(_TRAIN_FLAGS)), st.integers(0, 7), max_size=4))
def test_train_flag_combinations(no_fit, chosen):
    flags = {}
    for k, i in chosen.items():
        values = list(_TRAIN_FLAGS[k])
        flags[k] = values[i % len(values)]
    assume(flags.get("--device") != "gpu" or flags.get("--linker") == "c")  # no GPU run from a fuzz test
    argv = []
    for k, v in flags.items():
        argv += [k] if v is None else [k, v]
    with new_dir() as d:
        d = Path(d)
        (d / "c.txt").write_text(CORPUS_TEXT)
        before = len(no_fit)
        rc, _, err = _train(d / "c.txt", d / "run", *argv)
        valid = _train_flags_valid(flags)
        check_clean(rc, err, must_fail=not valid)
        assert len(no_fit) == before + (1 if valid else 0)  # an invalid run never reaches training
        if not valid and (d / "run").exists():
            no_leftovers(d / "run")  # no corpus.npz, no write probe


@FEW
@given(data=st.binary(max_size=600), fmt=st.sampled_from(["auto", "lines", "csv", "jsonl"]))
def test_train_on_random_corpus_files(no_fit, data, fmt):
    with new_dir() as d:
        d = Path(d)
        (d / "junk.dat").write_bytes(data)
        rc, _, err = run(
            "train",
            d / "junk.dat",
            "--format",
            fmt,
            "--out",
            d / "run",
            "--no-progress",
            "--hidden",
            "4",
            "--embedding",
            "0",
            "--tokenizer",
            "whitespace",
            "--test-fraction",
            "0",
        )
        line = check_clean(rc, err)
        if line is not None:
            assert "junk.dat" in line or "sentences" in line  # the file, or "corpus has only N sentences"


@pytest.mark.parametrize("case", ["directory", "missing", "empty", "unknown-name"])
def test_train_on_bad_corpus_sources(no_fit, tmp_path, case):
    src = {
        "directory": tmp_path,
        "missing": tmp_path / "nope.txt",
        "empty": tmp_path / "empty.txt",
        "unknown-name": "no-such-corpus",
    }[case]
    if case == "empty":
        src.write_text("")
    rc, _, err = run("train", src, "--out", tmp_path / "run", "--no-progress")
    line = check_clean(rc, err, must_fail=True)
    assert str(src) in line and not no_fit


# ==================================================================================================
# generate / score / perplexity / fill
# ==================================================================================================


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from rnnlm import engine
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("ck")
    (d / "c.txt").write_text(CORPUS_TEXT)
    corpus = prepare(d / "c.txt", format="lines")
    model = LanguageModel(
        ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=4, embedding_dim=3, cell="gru"),
        seed=0,
        linker=engine.default_linker(),
    )
    return save_checkpoint(d / "m.npz", model, corpus=corpus)


_USES = {  # command -> argv after the checkpoint
    "generate": ["--num", "1", "--max-length", "3", "--seed", "0"],
    "score": ["{text}"],
    "perplexity": ["{text}"],
    "fill": ["the ___ sat"],
}


@FEW  # a damaged file that still loads costs a compile
@given(
    command=st.sampled_from(sorted(_USES)),
    how=st.sampled_from(["truncate", "flip", "meta", "garbage"]),
    data=st.data(),
)
def test_model_commands_on_damaged_checkpoints(checkpoint, command, how, data):
    with new_dir() as d:
        d = Path(d)
        path = d / "bad.npz"
        raw = bytearray(checkpoint.read_bytes())
        if how == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif how == "flip":
            for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4)):
                raw[pos] ^= 0xFF
        elif how == "garbage":
            raw = bytearray(data.draw(st.binary(max_size=200)))
        if how == "meta":
            arrays, meta = _meta_of(checkpoint)
            key = data.draw(
                st.sampled_from(["version", "model", "vocab", "corpus", "optimizer", "train_state"])
            )
            meta[key] = data.draw(_JSON)
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        else:
            path.write_bytes(bytes(raw))
        (d / "text.txt").write_text("the cat sat\n")
        argv = [a.replace("{text}", str(d / "text.txt")) for a in _USES[command]]
        rc, _, err = run(command, path, *argv)
        line = check_clean(rc, err)
        if not _loads(path):  # some damage is harmless (a flip in an unused header byte)
            assert rc == 2 and "bad.npz" in line, line


def _loads(path) -> bool:
    from rnnlm.errors import RnnlmError
    from rnnlm.training.checkpoint import load_model

    try:
        load_model(path)
        return True
    except RnnlmError:
        return False


_MODEL_FLAGS = [
    ("generate", ["--temperature", "0"]),
    ("generate", ["--temperature", "nan"]),
    ("generate", ["--top-k", "-1"]),
    ("generate", ["--beam-size", "0"]),
    ("generate", ["--max-length", "0"]),
    ("generate", ["--num", "0"]),
    ("generate", ["--mode", "psychic"]),
    ("generate", ["--start-id", "999999"]),
    ("generate", ["--prime-file", "/nonexistent/prime.txt"]),
    ("generate", ["--prime-file", "/"]),
    ("generate", ["--prime", "a", "--prime-file", "x"]),
    ("generate", ["--device", "gpu", "--linker", "c"]),
    ("score", ["/nonexistent/text.txt"]),
    ("score", ["/"]),
    ("score", ["{text}", "--batch-size", "0"]),
    ("perplexity", ["/nonexistent/text.txt"]),
    ("perplexity", ["{text}", "--format", "xml"]),
    ("perplexity", ["{empty}"]),
    ("fill", ["no blank here"]),
    ("fill", ["two ___ blanks ___"]),
    ("fill", ["the ___ sat", "--top-k", "0"]),
]


@pytest.mark.parametrize("command,argv", _MODEL_FLAGS, ids=[f"{c}{' '.join(a)}" for c, a in _MODEL_FLAGS])
def test_model_commands_reject_bad_flags_and_files(checkpoint, tmp_path, command, argv):
    (tmp_path / "text.txt").write_text("the cat sat\n")
    (tmp_path / "empty.txt").write_text("")
    argv = [
        a.replace("{text}", str(tmp_path / "text.txt")).replace("{empty}", str(tmp_path / "empty.txt"))
        for a in argv
    ]
    rc, _, err = run(command, checkpoint, *argv)
    check_clean(rc, err, must_fail=True)
