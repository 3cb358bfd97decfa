"""Hardening (issue 8): streaming corpora, untrusted files, output problems, interrupted training.

NaN recovery and the basic bad-checkpoint cases (truncated, garbage, wrong shape, vocabulary
mismatch) are in test_train.py; the CLI fuzzing is in test_fuzz_cli.py.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm import engine
from rnnlm.cli.app import main
from rnnlm.data import SENTENCE_END, SENTENCE_START, Corpus, CorpusWarning, Vocabulary, prepare
from rnnlm.data.vocab import TokenIds, rank_tokens
from rnnlm.errors import CheckpointError, ConfigError, CorpusError
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.training.checkpoint import load_model, read_checkpoint, save_checkpoint
from rnnlm.training.optim import make_optimizer

REPO = Path(__file__).resolve().parents[1]
LINKER = engine.default_linker()
WORDS = "the cat sat on a mat while dogs ran far away from home today".split()
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _cycle_sentences(n=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start, k = rng.integers(0, len(WORDS)), rng.integers(2, 9)
        out.append(" ".join(WORDS[(start + i) % len(WORDS)] for i in range(k)))
    return out


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    """A tiny pre-tokenized corpus (lines format): windows of a fixed word cycle."""
    p = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    p.write_text("\n".join(_cycle_sentences()) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def tiny_corpus(corpus_file) -> Corpus:
    return prepare(corpus_file, format="lines")


def _tiny_model(corpus, optimizer="adam", **kw) -> LanguageModel:
    cfg = ModelConfig(
        vocab_size=len(corpus.vocab),
        hidden_dim=kw.pop("hidden_dim", 6),
        cell=kw.pop("cell", "gru"),
        embedding_dim=kw.pop("embedding_dim", 4),
        **kw,
    )
    model = LanguageModel(cfg, seed=0, linker=LINKER)
    model.set_optimizer(make_optimizer(optimizer, 0.01))
    return model


def _rewrite_npz(path: Path, arrays: dict, meta: dict | None = None) -> None:
    """Rewrite an npz with ``arrays`` (and ``meta`` as JSON bytes); object arrays are pickled by np.savez."""
    if meta is not None:
        arrays = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _checkpoint_arrays(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    return arrays, meta


# ==================================================================================================
# Large corpora: prepare streams
# ==================================================================================================


@pytest.mark.parametrize("case", ["lines", "csv-nltk"])
def test_parallel_tokenization_gives_the_identical_corpus(case, corpus_file, reddit_csv):
    src, kw = (
        (corpus_file, dict(format="lines")) if case == "lines" else (reddit_csv, dict(splitter="trained"))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)  # the sample's cut-off last row
        serial = prepare(src, **kw)
        parallel = prepare(src, workers=2, **kw)
    assert parallel.vocab == serial.vocab and parallel.vocab.counts == serial.vocab.counts
    np.testing.assert_array_equal(parallel.stream(), serial.stream())
    assert [len(s) for s in parallel.sentences] == [len(s) for s in serial.sentences]
    assert parallel.stats == serial.stats and len(serial) > 30
    with pytest.raises(ConfigError, match="workers"):
        prepare(src, workers=0)


@FUZZ
@given(
    sents=st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e", "<unk>", "SENTENCE_END"]), max_size=6),
        min_size=1,
        max_size=12,
    ),
    vocab_size=st.one_of(st.none(), st.integers(3, 9)),
    unk=st.sampled_from(["UNKNOWN_TOKEN", "<unk>", "a"]),
    wrap=st.booleans(),
)
def test_numpy_vocabulary_equals_the_reference_build(sents, vocab_size, unk, wrap):
    """prepare ranks tokens numbered by first occurrence with NumPy (only kept tokens become Python
    objects); it must equal Vocabulary.build (the tutorial's semantics: frequency, ties by first
    occurrence) exactly."""
    lists = [[SENTENCE_START, *s, SENTENCE_END] for s in sents] if wrap else sents
    reserved = (SENTENCE_START, SENTENCE_END) if wrap else ()
    if not any(lists):
        return
    index: dict = {}
    ids = np.array([index.setdefault(t, len(index)) for s in lists for t in s], np.int64)
    counts = np.bincount(ids, minlength=len(index))
    try:
        want = Vocabulary.build(lists, vocab_size, unk, reserved=reserved)
    except ConfigError:
        with pytest.raises(ConfigError):
            rank_tokens(index, counts, vocab_size, unk, reserved)
        return
    got, lookup = rank_tokens(index, counts, vocab_size, unk, reserved)
    assert got.index_to_word == want.index_to_word and got.counts == want.counts
    for token, pid in index.items():
        assert lookup[pid] == want.word_to_index.get(token, want.unk_index)
    # what prepare runs: sentences encoded as they are read, then renumbered in place
    tokens = TokenIds(wrap=False)
    for s in lists:
        tokens.add(s)
    vocab, flat, offsets, n_distinct = tokens.vocabulary(vocab_size, unk, reserved)
    assert vocab == want and vocab.counts == want.counts and n_distinct == len(index)
    assert flat.tolist() == want.encode([t for s in lists for t in s]).tolist()
    assert offsets.tolist() == np.cumsum([0] + [len(s) for s in lists]).tolist()


def test_prepare_stops_reading_at_max_sentences(tmp_path):
    """Streaming: with max_sentences the rest of the file is never read (a bad line 1000 is fine)."""
    lines = [json.dumps({"text": f"sentence number {i}"}) for i in range(999)] + ["{not json"]
    p = tmp_path / "big.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = prepare(p, tokenizer="whitespace", max_sentences=3)
    assert [c.decode(s) for s in c.sentences] == [
        f"SENTENCE_START sentence number {i} SENTENCE_END" for i in range(3)
    ]
    with pytest.raises(CorpusError, match="line 1000"):
        prepare(p, tokenizer="whitespace")


def test_flat_storage_shares_one_read_only_array(tiny_corpus, tmp_path):
    c = tiny_corpus
    ids = c.stream()
    assert ids is c.stream() and not ids.flags.writeable  # no copy per call; views cannot corrupt it
    assert all(np.shares_memory(s, ids) for s in c.sentences[:3])
    back = Corpus.load(c.save(tmp_path / "c.npz"))
    as_list = Corpus(c.vocab, [s.copy() for s in c.sentences], c.level, dict(c.stats), c.settings)
    for a, b in ((back, c), (as_list, c)):
        pa, pb = a.split(0.2, 0.1, seed=3), b.split(0.2, 0.1, seed=3)
        for k in pa:
            assert [s.tolist() for s in pa[k].sentences] == [s.tolist() for s in pb[k].sentences]


_MEASURE = r"""
import json, sys, warnings
from rnnlm.data import prepare
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
base = rss("VmRSS:")
c = prepare(sys.argv[1], format="lines", vocab_size=500)
print(json.dumps({"growth": rss("VmHWM:") - base, "encoded": c.stream().nbytes + 8 * (len(c) + 1)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) for peak RSS")
def test_prepare_memory_grows_with_the_encoded_arrays_not_the_text(tmp_path):
    """Same vocabulary (2,000 word types), 5x the tokens: peak memory may grow by the encoded ids
    (4 bytes a token, 8 a sentence) and little else (measured: 7 B/token here, 4.4 at larger sizes).
    Holding the text or its token strings costs ~100 bytes a token (the in-memory reader this replaced)."""
    rng = np.random.default_rng(0)
    results = {}
    for n_lines in (20_000, 100_000):
        words = rng.integers(0, 2000, (n_lines, 20))
        p = tmp_path / f"c{n_lines}.txt"
        p.write_text("\n".join(" ".join(f"word{w}" for w in row) for row in words.tolist()) + "\n")
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(p)], capture_output=True, text=True, timeout=300, check=True
        )
        results[n_lines] = json.loads(out.stdout)
    small, big = results[20_000], results[100_000]
    extra_tokens = (100_000 - 20_000) * 22
    assert big["encoded"] - small["encoded"] >= 4 * extra_tokens
    grew = big["growth"] - small["growth"]
    assert grew < 10 * extra_tokens, (small, big)  # 4.4 B/token ids and offsets + slices + allocator


# ==================================================================================================
# Untrusted files
# ==================================================================================================


class _Trap:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.core
def test_pickled_arrays_are_rejected_and_never_run(tiny_corpus, tmp_path):
    marker = tmp_path / "code-ran"
    trap = np.array([_Trap(marker)], dtype=object)
    model = _tiny_model(tiny_corpus)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    arrays, meta = _checkpoint_arrays(ck)
    for victim in ("param/V", "opt/lr", "extra"):
        _rewrite_npz(ck, {**arrays, victim: trap}, meta)
        with pytest.raises(CheckpointError, match="m.npz"):
            load_model(ck, linker=LINKER)
        assert not marker.exists()
    cp = tiny_corpus.save(tmp_path / "c.npz")
    with np.load(cp, allow_pickle=False) as z:
        carrays = {k: z[k] for k in z.files}
    for victim in ("ids", "meta"):
        _rewrite_npz(cp, {**carrays, victim: trap})
        with pytest.raises(CorpusError, match="c.npz"):
            Corpus.load(cp)
        assert not marker.exists()
    # and the same files through the CLI: one line, exit 2
    assert main(["data", "info", str(cp)]) == 2 and not marker.exists()


# Policy (documented in rnnlm.training.checkpoint): real floating arrays of any precision are accepted and
# cast to float32 (NumPy's float64 default, float16 exports); anything else -- integers, booleans,
# complex, strings -- is refused with the array's name and dtype. A float64 value that overflows
# float32 is refused too (it would load as Inf).
@pytest.mark.parametrize(
    "dtype,ok",
    [
        ("float64", True),
        ("float16", True),
        ("int32", False),
        ("int64", False),
        ("bool", False),
        ("complex64", False),
        ("U3", False),
    ],
)
def test_parameter_dtypes_are_cast_or_refused(tiny_corpus, tmp_path, dtype, ok):
    model = _tiny_model(tiny_corpus)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    arrays, meta = _checkpoint_arrays(ck)
    W = arrays["param/W0"]
    arrays["param/W0"] = W.astype(dtype) if dtype != "U3" else np.full(W.shape, "abc")
    _rewrite_npz(ck, arrays, meta)
    if ok:
        loaded, _, _ = load_model(ck, linker=LINKER)
        got = loaded.get_params()["W0"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, W.astype(dtype).astype(np.float32))
    else:
        with pytest.raises(CheckpointError, match=r"param/W0.*" + dtype[:3]):
            load_model(ck, linker=LINKER)


def test_float64_values_beyond_float32_are_refused(tiny_corpus, tmp_path):
    model = _tiny_model(tiny_corpus)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    arrays, meta = _checkpoint_arrays(ck)
    arrays["param/V"] = arrays["param/V"].astype(np.float64)
    arrays["param/V"][0, 0] = 1e39
    _rewrite_npz(ck, arrays, meta)
    with pytest.raises(CheckpointError, match="V"):
        load_model(ck, linker=LINKER)


_BAD_META = {
    "version_text": lambda m: m.update(version="one"),
    "version_future": lambda m: m.update(version=99),
    "model_not_dict": lambda m: m.update(model=[1, 2]),
    "hidden_text": lambda m: m["model"].update(hidden_dim="six"),
    "hidden_float": lambda m: m["model"].update(hidden_dim=6.5),
    "cell_unknown": lambda m: m["model"].update(cell="transformer"),
    "layers_bool": lambda m: m["model"].update(layers=True),
    "dropout_text": lambda m: m["model"].update(dropout="lots"),
    "unknown_setting": lambda m: m["model"].update(heads=8),
    "vocab_not_dict": lambda m: m.update(vocab="the cat"),
    "vocab_words_not_strings": lambda m: m["vocab"].update(
        index_to_word=list(range(len(m["vocab"]["index_to_word"])))
    ),
    "vocab_counts_text": lambda m: m["vocab"].update(counts="many"),
    "train_state_list": lambda m: m.update(train_state=[1]),
    "corpus_settings_bad": lambda m: m["corpus"].update(settings={"format": 7}),
    "optimizer_unknown": lambda m: m.update(optimizer={"name": "lion", "clip": 0}),
    "meta_list": lambda m: (m.clear(), m.update({"format": "rnnlm-checkpoint", "version": 1, "model": None})),
}


@pytest.mark.parametrize("damage", list(_BAD_META))
def test_bad_checkpoint_metadata_is_a_clear_error(tiny_corpus, tmp_path, damage):
    model = _tiny_model(tiny_corpus)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus, train_state={"epoch": 1})
    arrays, meta = _checkpoint_arrays(ck)
    _BAD_META[damage](meta)
    _rewrite_npz(ck, arrays, meta)
    with pytest.raises(CheckpointError) as info:
        m, vocab, meta2 = load_model(ck, linker=LINKER)
        from rnnlm.training.trainer import TrainConfig, Trainer  # resuming reads the training state too

        Trainer(m, tiny_corpus, None, TrainConfig(), progress=False).resume(ck)
    assert "m.npz" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("damage", ["opt_shape", "opt_missing", "state_shape"])
def test_resume_validates_optimizer_state(tiny_corpus, tmp_path, damage):
    from rnnlm.training.trainer import TrainConfig, Trainer

    model = _tiny_model(tiny_corpus)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    arrays, meta = _checkpoint_arrays(ck)
    key = next(k for k in arrays if k.startswith("opt/") and k != "opt/lr")
    if damage == "opt_shape":
        arrays[key] = np.zeros((2, 2), np.float32)
    elif damage == "opt_missing":
        del arrays[key]
    else:
        arrays["state/0"] = np.zeros((5,), np.float32)
        meta["train_state"] = {"batching": "stream"}
    _rewrite_npz(ck, arrays, meta)
    fresh = _tiny_model(tiny_corpus)
    trainer = Trainer(fresh, tiny_corpus, None, TrainConfig(batching="stream"), progress=False)
    with pytest.raises(CheckpointError, match="m.npz"):
        trainer.resume(ck)


@FUZZ
@given(data=st.data())
def test_damaged_files_never_escape_as_other_errors(tiny_corpus, tmp_path_factory, data):
    """Random truncation and byte flips of a checkpoint and a (compressed) corpus file: loading
    succeeds or raises the typed error -- never zlib.error, BadZipFile, KeyError, ..."""
    d = tmp_path_factory.mktemp("damage")
    model = _tiny_model(tiny_corpus)
    files = {
        "ck": save_checkpoint(d / "m.npz", model, corpus=tiny_corpus),
        "corpus": tiny_corpus.save(d / "c.npz"),
    }
    which = data.draw(st.sampled_from(sorted(files)))
    path = files[which]
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[pos] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))
    try:
        if which == "ck":
            load_model(path, linker=LINKER)
        else:
            Corpus.load(path)
    except (CheckpointError, CorpusError) as e:
        assert path.name in str(e) and "\n" not in str(e)


@pytest.mark.core
def test_checkpoint_moves_between_linkers(tiny_corpus, tmp_path):
    """Saved from a model on the default linker (JAX under PyTensor), loaded on the C linker (the
    only one Aesara has): same parameters, same loss."""
    model = _tiny_model(tiny_corpus, cell="lstm")
    x, y, mask = next(iter(_batches(tiny_corpus)))
    model.train_step(x, y, mask)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    loaded, vocab, meta = load_model(ck, linker="c")
    assert meta["linker"] == LINKER and meta["engine"]["engine"] == engine.name and vocab == tiny_corpus.vocab
    for k, v in model.get_params().items():
        np.testing.assert_array_equal(loaded.get_params()[k], v)
    want = model.evaluate(x, y, mask)[0]
    got = loaded.evaluate(x, y, mask)[0]
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def _batches(corpus):
    from rnnlm.data.batching import sentence_batches

    return sentence_batches(corpus.sentences, 4, max_length=8, shuffle=False)


_AESARA_PY = REPO / ".venv-aesara" / "bin" / "python"
_LOAD_ELSEWHERE = r"""
import json, sys
import numpy as np
from rnnlm import engine
from rnnlm.training.checkpoint import load_model
model, vocab, meta = load_model(sys.argv[1], linker="c")
z = np.load(sys.argv[2])
loss = model.evaluate(z["x"], z["y"], z["m"])[0]
print(json.dumps({"engine": engine.name, "loss": float(loss), "vocab": len(vocab)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    engine.name != "pytensor" or not _AESARA_PY.exists(),
    reason="needs PyTensor here and the Aesara environment (.venv-aesara; make test-aesara)",
)
def test_checkpoint_saved_under_pytensor_loads_under_aesara(tiny_corpus, tmp_path):
    model = _tiny_model(tiny_corpus, cell="gru", layers=2)
    x, y, mask = next(iter(_batches(tiny_corpus)))
    model.train_step(x, y, mask)
    ck = save_checkpoint(tmp_path / "m.npz", model, corpus=tiny_corpus)
    np.savez(tmp_path / "batch.npz", x=x, y=y, m=mask)
    env = {**os.environ, "RNNLM_ENGINE": "aesara"}
    out = subprocess.run(
        [str(_AESARA_PY), "-c", _LOAD_ELSEWHERE, str(ck), str(tmp_path / "batch.npz")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["engine"] == "aesara" and res["vocab"] == len(tiny_corpus.vocab)
    assert res["loss"] == pytest.approx(float(model.evaluate(x, y, mask)[0]), rel=1e-5)


# ==================================================================================================
# Output problems: reported before training, no partial files
# ==================================================================================================


class _Reached(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if `rnnlm train` gets as far as building a Trainer."""
    import rnnlm.training.trainer

    def trap(*a, **k):
        raise AssertionError("training started although the output problem should stop it first")

    monkeypatch.setattr(rnnlm.training.trainer, "Trainer", trap)


def _cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(rc, err, *fragments):
    lines = err.strip().splitlines()
    assert rc == 2 and lines and lines[-1].startswith("rnnlm: error: "), err
    assert all(ln.startswith("rnnlm: ") for ln in lines) and "Traceback" not in err, err
    assert sum(ln.startswith("rnnlm: error: ") for ln in lines) == 1, err
    for f in fragments:
        assert f in lines[-1], (f, lines[-1])
    return lines[-1]


def _train_argv(corpus_file, out, *extra):
    return [
        "train",
        corpus_file,
        "--format",
        "lines",
        "--out",
        out,
        "--hidden",
        "6",
        "--embedding",
        "4",
        "--batch-size",
        "4",
        "--max-length",
        "8",
        "--no-progress",
        "--linker",
        LINKER,
        *extra,
    ]


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_dir_is_reported_before_training(where, corpus_file, tmp_path, capsys, no_training):
    # Tests run as root, where chmod does not stop writes: use paths no one can create.
    if where == "under_a_file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "run"
    else:
        out = Path("/proc/rnnlm-forbidden/run")
    rc, _, err = _cli(capsys, *_train_argv(corpus_file, out))
    _one_error_line(rc, err, f"--out {out}", "not writable")
    rc, _, err = _cli(capsys, "data", "prepare", corpus_file, "--out", out / "c.npz")
    _one_error_line(rc, err, str(out))


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_is_reported_before_training_without_leftovers(
    corpus_file, tmp_path, capsys, monkeypatch, no_training
):
    out = tmp_path / "run"
    monkeypatch.setattr(os, "fsync", _enospc)
    rc, _, err = _cli(capsys, *_train_argv(corpus_file, out))
    _one_error_line(rc, err, f"--out {out}", "No space left on device")
    assert list(out.iterdir()) == []  # the write probe is gone too


def test_too_little_free_space_for_the_checkpoints_is_reported_before_training(
    corpus_file, tmp_path, capsys, monkeypatch, no_training
):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    rc, _, err = _cli(capsys, *_train_argv(corpus_file, tmp_path / "run", "--hidden", "64"))
    _one_error_line(rc, err, "free", str(tmp_path / "run"))


def test_full_disk_while_preparing_names_the_file_and_leaves_nothing(
    corpus_file, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(os, "fsync", _enospc)
    rc, _, err = _cli(capsys, "data", "prepare", corpus_file, "--out", tmp_path / "c.npz")
    _one_error_line(rc, err, str(tmp_path / "c.npz"), "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_training_keeps_the_last_checkpoint(tiny_corpus, tmp_path, monkeypatch):
    from rnnlm.training.trainer import TrainConfig, Trainer

    model = _tiny_model(tiny_corpus)
    cfg = TrainConfig(batch_size=4, max_length=8, epochs=3, save_every=2)
    trainer = Trainer(model, tiny_corpus, None, cfg, out_dir=tmp_path, corpus=tiny_corpus, progress=False)
    saves = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        saves["n"] += 1
        if saves["n"] > 3:  # the fourth checkpoint write hits a full disk
            _enospc()
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="checkpoint.npz.*No space left"):
        trainer.fit()
    monkeypatch.setattr(os, "fsync", real_fsync)
    ck = read_checkpoint(tmp_path / "checkpoint.npz")
    assert ck["meta"]["train_state"]["global_step"] == 6  # the third save, intact
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a real full disk); skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_really_full_disk(tiny_tmpfs, corpus_file, tmp_path, capsys, no_training):
    big = tmp_path / "big.txt"
    rng = np.random.default_rng(0)
    big.write_text("\n".join(" ".join(f"w{w}" for w in row) for row in rng.integers(0, 50_000, (20_000, 10))))
    rc, _, err = _cli(
        capsys,
        "data",
        "prepare",
        big,
        "--format",
        "lines",
        "--vocab-size",
        "60000",
        "--out",
        tiny_tmpfs / "c.npz",
    )  # ~200k random ids: far more than 64 KiB compressed
    _one_error_line(rc, err, str(tiny_tmpfs / "c.npz"), "No space left on device")
    assert list(tiny_tmpfs.iterdir()) == []
    filler = tiny_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    rc, _, err = _cli(capsys, *_train_argv(corpus_file, tiny_tmpfs / "run"))
    _one_error_line(rc, err, "No space left on device")
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) in (["filler"], ["filler", "run"])


# ==================================================================================================
# Interrupted training
# ==================================================================================================


def _spawn_train(corpus_file, out, *extra):
    cmd = [
        sys.executable,
        "-m",
        "rnnlm",
        *_train_argv(
            corpus_file,
            out,
            "--save-every",
            "1",
            "--epochs",
            "100000",
            "--valid-fraction",
            "0.1",
            "--test-fraction",
            "0",
            *extra,
        ),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for(path: Path, proc, timeout=240):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"training exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.05)


def _step(path: Path) -> int:
    model, vocab, meta = load_model(path, linker=LINKER)  # intact and loadable
    assert vocab is not None and model.config.hidden_dim == 6
    return int(meta["train_state"]["global_step"])


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_a_resumable_checkpoint(corpus_file, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(8)
    steps = []
    for attempt in range(3):
        proc = _spawn_train(corpus_file, out, *(["--resume"] if attempt else []))
        _wait_for(out / "checkpoint.npz", proc)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the loop: often mid-save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close(), proc.stderr.close()
        steps.append(_step(out / "checkpoint.npz"))
        assert (Corpus.load(out / "corpus.npz")).vocab is not None
    assert steps == sorted(steps) and steps[-1] > 0  # resumed runs never lost ground
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnlm",
            *map(
                str,
                _train_argv(
                    corpus_file,
                    out,
                    "--resume",
                    "--max-steps",
                    "2",
                    "--save-every",
                    "1",
                    "--valid-fraction",
                    "0.1",
                    "--test-fraction",
                    "0",
                    "--json",
                ),
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == _step(out / "checkpoint.npz")
    assert _step(out / "checkpoint.npz") >= steps[-1] + 2
    assert not list(out.glob(".*.tmp")), sorted(p.name for p in out.iterdir())
    for line in (out / "log.jsonl").read_text().splitlines():
        json.loads(line)


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint_and_exits_0(corpus_file, tmp_path):
    out = tmp_path / "run"
    proc = _spawn_train(corpus_file, out, "--json")
    _wait_for(out / "checkpoint.npz", proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    res = json.loads(stdout.decode().strip().splitlines()[-1])
    assert res["stopped"] == "interrupted" and res["steps"] == _step(out / "checkpoint.npz") > 0
    assert not list(out.glob(".*.tmp"))


def test_next_run_cleans_stale_temps_and_a_torn_log_line(tiny_corpus, tmp_path):
    """What a SIGKILL can leave: temp files of any atomic write, half a line of log.jsonl."""
    from rnnlm.training.trainer import TrainConfig, Trainer

    for name in ("checkpoint.npz", "best.npz", "loss.png", "corpus.npz"):
        (tmp_path / f".{name}.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "log.jsonl").write_text('{"event": "train", "step": 1}\n{"event": "tra')
    trainer = Trainer(
        _tiny_model(tiny_corpus),
        tiny_corpus,
        None,
        TrainConfig(batch_size=4, max_length=8, epochs=1),
        out_dir=tmp_path,
        corpus=tiny_corpus,
        progress=False,
    )
    trainer.fit()
    assert not list(tmp_path.glob(".*.tmp"))
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert records[0] == {"event": "train", "step": 1} and records[-1]["event"] == "stop"
