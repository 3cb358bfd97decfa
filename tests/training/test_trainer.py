"""Batching, optimizers, the training loop, checkpoints and resume."""

import json

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.data import Corpus, prepare
from rnnlm.data.batching import sentence_batches, stream_batches
from rnnlm.errors import CheckpointError, ConfigError
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.training.checkpoint import load_model, read_checkpoint, save_checkpoint
from rnnlm.training.config import TrainConfig, parse_duration
from rnnlm.training.optim import make_optimizer
from rnnlm.training.trainer import NonFiniteError, Trainer

LINKER = engine.default_linker()
WORDS = "the cat sat on a mat while dogs ran far away from home today".split()


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    # Windows of a fixed word cycle: the next word is predictable, so training must learn it.
    sents = []
    for _ in range(60):
        start, n = rng.integers(0, len(WORDS)), rng.integers(2, 9)
        sents.append([WORDS[(start + i) % len(WORDS)] for i in range(n)])
    return Corpus.from_tokens(sents)


# -- batching ------------------------------------------------------------------------------------
def test_sentence_batches_cover_every_pair_once(corpus):
    batches = sentence_batches(corpus.sentences, 8, max_length=6, seed=1, epoch=0)
    seen = []
    for x, y, m in batches:
        assert x.shape == y.shape == m.shape and x.shape[1] == 8 and x.shape[0] in (6, 8)
        for b in range(8):
            n = int(m[:, b].sum())
            assert np.all(m[:n, b] == 1) and np.all(m[n:, b] == 0)  # right padding only
            if n:
                seen.append((tuple(x[:n, b]), tuple(y[:n, b])))
    want = []
    for s in corpus.sentences:
        for start in range(0, len(s) - 1, 6):
            piece = s[start : start + 7]
            want.append((tuple(piece[:-1]), tuple(piece[1:])))
    assert sorted(seen) == sorted(want)
    again = sentence_batches(corpus.sentences, 8, max_length=6, seed=1, epoch=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    other = sentence_batches(corpus.sentences, 8, max_length=6, seed=1, epoch=1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other, strict=True))


def test_stream_batches_are_contiguous_tracks():
    ids = np.arange(103, dtype=np.int32)
    chunks = stream_batches(ids, batch_size=4, bptt=7)
    x = np.concatenate([c[0][c[2][:, 0] > 0] for c in chunks])
    y = np.concatenate([c[1][c[2][:, 0] > 0] for c in chunks])
    assert x.shape == (25, 4)
    np.testing.assert_array_equal(y, x + 1)  # every target is its input's successor
    np.testing.assert_array_equal(x[:, 1], np.arange(25, 50))  # track 1 continues across chunks
    assert all(c[0].shape == (7, 4) for c in chunks)


# -- optimizers against hand-computed updates -----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_batch():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, (5, 2)).astype("int32")
    y = rng.integers(0, 12, (5, 2)).astype("int32")
    m = np.ones((5, 2), "float32")
    m[3:, 1] = 0
    return x, y, m


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_optimizer_update_matches_hand_computation(name, tiny_batch):
    x, y, m = tiny_batch
    cfg = ModelConfig(vocab_size=12, hidden_dim=4, cell="rnn", embedding_dim=3)
    model = LanguageModel(cfg, seed=1, linker=LINKER)
    p0 = model.get_params()
    g = model.gradients(x, y, m)
    n = g["ntok"]
    lr = 0.1
    model.set_optimizer(make_optimizer(name, lr, clip=0.0))
    for _ in (1, 2):
        model.train_step(x, y, m)
    # Hand computation of two steps (the second needs the gradient at the updated point).
    ref = LanguageModel(cfg, params=p0, linker=LINKER)
    p = {k: v.astype("float64") for k, v in p0.items()}
    state = {k: {"m": 0.0, "v": 0.0} for k in p}
    for t in (1, 2):
        ref.set_params({k: v.astype("float32") for k, v in p.items()})
        grads = ref.gradients(x, y, m)
        for k in p:
            gk = grads[k] / n  # the train step minimises the mean over tokens
            if name == "sgd":
                p[k] = p[k] - lr * gk
            elif name == "rmsprop":
                state[k]["v"] = 0.9 * state[k]["v"] + 0.1 * gk**2
                p[k] = p[k] - lr * gk / np.sqrt(state[k]["v"] + 1e-6)
            else:
                state[k]["m"] = 0.9 * state[k]["m"] + 0.1 * gk
                state[k]["v"] = 0.999 * state[k]["v"] + 0.001 * gk**2
                corr = np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
                p[k] = p[k] - lr * corr * state[k]["m"] / (np.sqrt(state[k]["v"]) + 1e-8)
    got = model.get_params()
    for k in p:
        np.testing.assert_allclose(got[k], p[k], rtol=2e-3, atol=2e-5, err_msg=k)


def test_global_norm_clipping_bounds_the_step(tiny_batch):
    x, y, m = tiny_batch
    cfg = ModelConfig(vocab_size=12, hidden_dim=4, cell="gru", embedding_dim=3)
    model = LanguageModel(cfg, seed=2, linker=LINKER)
    p0 = model.get_params()
    g = model.gradients(x, y, m)
    full = np.sqrt(sum(np.sum((g[k] / g["ntok"]) ** 2) for k in p0))
    clip = full / 10
    model.set_optimizer(make_optimizer("sgd", 1.0, clip=clip))
    _, _, gnorm, _ = model.train_step(x, y, m)
    assert float(gnorm) == pytest.approx(full, rel=1e-3)  # reported norm is before clipping
    p1 = model.get_params()
    step = np.sqrt(sum(np.sum((p1[k].astype("float64") - p0[k]) ** 2) for k in p0))
    assert step == pytest.approx(clip, rel=1e-3)
    # direction unchanged: the step is the gradient scaled by clip / norm
    k = "V"
    np.testing.assert_allclose(p0[k] - p1[k], g[k] / g["ntok"] * clip / full, rtol=1e-2, atol=1e-6)


# -- training loop ------------------------------------------------------------------------------------
def _trainer(corpus, out, **kw):
    mcfg = ModelConfig(
        vocab_size=len(corpus.vocab),
        hidden_dim=8,
        cell=kw.pop("cell", "gru"),
        embedding_dim=6,
        dropout=kw.pop("dropout", 0.0),
        layers=kw.pop("layers", 1),
    )
    model = LanguageModel(mcfg, seed=0, linker=LINKER)
    splits = corpus.split(valid=0.1, test=0.0, seed=0)
    cfg = TrainConfig(
        **{
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 8,
            "max_length": 8,
            "epochs": 2,
            "schedule": "plateau",
            **kw,
        }
    )  # the loop's mechanics under the first rnnlm's schedule
    return Trainer(model, splits["train"], splits["valid"], cfg, out_dir=out, corpus=corpus, progress=False)


@pytest.mark.parametrize("level", ["word", "char"])
def test_auto_batching_streams_only_a_char_level_lm(tmp_path, level, corpus):
    """``batching="auto"``: a stream of chunks for a char-level language model, sentences at word level
    and for the bidirectional fill model at either level (it reads each sentence both ways; it once failed
    at char level with "trains on sentences, not a stream", found by the CLI fuzz test)."""
    if level == "char":
        text = tmp_path / "t.txt"
        text.write_text("the cat sat\non a mat\n" * 20, encoding="utf-8")
        corpus = prepare(text, level="char", format="text")
    splits = corpus.split(valid=0.1, test=0.0, seed=0)
    for bidirectional in (False, True):
        cfg = ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=4, cell="gru", embedding_dim=3,
                          bidirectional=bidirectional)
        tr = Trainer(LanguageModel(cfg, seed=0, linker=LINKER), splits["train"], splits["valid"],
                     TrainConfig(batching="auto", batch_size=4, max_steps=1),
                     out_dir=tmp_path / str(bidirectional), corpus=corpus, progress=False)
        assert tr.batching == ("stream" if level == "char" and not bidirectional else "sentences")


@pytest.mark.core
def test_training_lowers_validation_loss(corpus, tmp_path):
    tr = _trainer(corpus, tmp_path, epochs=4, lr=0.03)
    st = tr.fit()
    valid = [h["valid_loss"] for h in st["history"] if h.get("event") == "valid"]
    assert len(valid) == 4 and valid[-1] < valid[0] - 0.3
    assert (tmp_path / "best.npz").exists() and (tmp_path / "checkpoint.npz").exists()
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"train", "valid", "stop"} <= {x["event"] for x in lines}
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("batching,dropout", [("sentences", 0.3), ("stream", 0.0)])
def test_resume_equals_uninterrupted_run(corpus, tmp_path, batching, dropout):
    full = _trainer(corpus, tmp_path / "full", batching=batching, dropout=dropout, layers=2, bptt=5)
    full.fit()
    part = _trainer(
        corpus, tmp_path / "part", batching=batching, dropout=dropout, layers=2, bptt=5, max_steps=5
    )  # stop mid-epoch 1
    st = part.fit()
    assert st["stopped"] == "max_steps" and st["step_in_epoch"] == 5
    model, vocab, meta = load_model(tmp_path / "part" / "checkpoint.npz", linker=LINKER)
    resumed = Trainer(
        model,
        *[corpus.split(valid=0.1, test=0.0, seed=0)[k] for k in ("train", "valid")],
        TrainConfig(
            optimizer="adam",
            lr=0.01,
            batch_size=8,
            max_length=8,
            epochs=2,
            batching=batching,
            bptt=5,
            schedule="plateau",
        ),
        out_dir=tmp_path / "part",
        corpus=corpus,
        progress=False,
    )
    resumed.resume(tmp_path / "part" / "checkpoint.npz")
    st2 = resumed.fit()
    assert st2["global_step"] == full.state["global_step"]
    a, b = full.model.get_params(), resumed.model.get_params()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_nan_recovery_restores_and_halves_lr(corpus, tmp_path, monkeypatch):
    tr = _trainer(corpus, tmp_path, epochs=1, schedule="constant")
    real = tr.model.train_step
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        if calls["n"] == 3:  # the parameters were just updated with a NaN gradient
            for v in tr.model.params.values():
                v.set_value(np.full(v.get_value().shape, np.nan, "float32"))
            return (np.float32(np.nan),) + tuple(out[1:])
        return out

    monkeypatch.setattr(tr.model, "train_step", poisoned)
    st = tr.fit()
    assert any(h.get("event") == "nan" for h in st["history"])
    assert tr.model.optimizer.learning_rate == pytest.approx(0.005)
    assert all(np.all(np.isfinite(v)) for v in tr.model.get_params().values())
    ck = read_checkpoint(tmp_path / "checkpoint.npz")
    assert all(np.all(np.isfinite(v)) for v in ck["params"].values())


def test_nan_stop_raises_and_never_saves_nan(corpus, tmp_path, monkeypatch):
    tr = _trainer(corpus, tmp_path, epochs=1, on_nan="stop")
    monkeypatch.setattr(tr.model, "train_step", lambda *a, **k: (np.nan, 1.0, np.nan, []))
    with pytest.raises(NonFiniteError):
        tr.fit()
    for v in tr.model.params.values():
        v.set_value(np.full(v.get_value().shape, np.nan, "float32"))
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "nan.npz", tr.model)
    assert not (tmp_path / "nan.npz").exists()


def test_time_budget_stops_and_checkpoints(corpus, tmp_path):
    tr = _trainer(corpus, tmp_path, epochs=1000, time_budget=0.5)
    st = tr.fit()
    assert st["stopped"] == "time_budget" and st["epoch"] < 1000
    assert read_checkpoint(tmp_path / "checkpoint.npz")["meta"]["train_state"]["stopped"] is None


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    for bad in ("", "abc", "-1m", "0"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


# -- checkpoints ----------------------------------------------------------------------------------
@pytest.mark.core
@pytest.mark.parametrize(
    "kw",
    [
        dict(cell="lstm", layers=2, embedding_dim=5),
        dict(cell="gru", bidirectional=True, embedding_dim=5),
        dict(cell="rnn", embedding_dim=8, tie_embeddings=True),
    ],
)
def test_checkpoint_round_trip(corpus, tmp_path, kw):
    cfg = ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=8, **kw)
    model = LanguageModel(cfg, seed=5, linker=LINKER)
    model.set_optimizer(make_optimizer("rmsprop", 0.002))
    path = save_checkpoint(tmp_path / "m.npz", model, corpus=corpus, train_state={"epoch": 3})
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)
    m2, vocab, meta = load_model(path, linker=LINKER)
    assert m2.config == cfg and vocab == corpus.vocab and meta["train_state"]["epoch"] == 3
    for k, v in model.get_params().items():
        np.testing.assert_array_equal(m2.get_params()[k], v)
    saved_opt = read_checkpoint(path)["opt"]
    assert set(saved_opt) == set(model.optimizer.get_state())
    for k, v in model.optimizer.get_state().items():
        np.testing.assert_array_equal(saved_opt[k], v)


@pytest.mark.core
def test_tutorial_model_file_loads_and_runs(data_dir):
    model, vocab, meta = load_model(data_dir / "trained-model-theano.npz", linker="c")
    assert vocab is None and model.config.vocab_size == 8000 and model.config.hidden_dim == 50
    with np.load(data_dir / "trained-model-theano.npz") as z:
        U, V, W = z["U"], z["V"], z["W"]
    x = np.array([0, 15, 27, 3], "int32")
    s = np.zeros(50)
    want = 0.0
    for t in range(3):  # the tutorial's forward pass in NumPy
        s = np.tanh(U[:, x[t]] + W @ s)
        o = V @ s
        o = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        want -= np.log(o[x[t + 1]])
    loss, ntok, _, _ = model.evaluate(x[:-1, None], x[1:, None], None)
    assert ntok == 3 and loss == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape", "vocab_mismatch"])
def test_bad_checkpoints_give_clear_errors(corpus, tmp_path, damage):
    cfg = ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=4, cell="rnn")
    model = LanguageModel(cfg, seed=0, linker=LINKER)
    path = save_checkpoint(tmp_path / "m.npz", model, corpus=corpus)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        ck = read_checkpoint(path)
        arrays = {f"param/{k}": v for k, v in ck["params"].items()}
        meta = ck["meta"]
        if damage == "wrong_shape":
            arrays["param/V"] = arrays["param/V"][:, :3]
        else:
            meta["vocab"]["index_to_word"] = meta["vocab"]["index_to_word"][:-1]
            meta["vocab"]["counts"] = meta["vocab"]["counts"][:-1]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(path, **arrays)
    with pytest.raises(CheckpointError):
        load_model(path, linker=LINKER)


def test_validation_scores_long_sentences_whole(corpus, tmp_path):
    """A sentence longer than max_length is scored with its full context (not cut in pieces)."""
    tr = _trainer(corpus, tmp_path, max_length=8)
    long = Corpus(corpus.vocab, [np.concatenate([s for s in corpus.sentences[:4]])], "word")
    assert len(long.sentences[0]) > 8
    res = tr.evaluate(long)
    s = long.sentences[0]
    loss, ntok, _, _ = tr.model.evaluate(s[:-1, None], s[1:, None], None)
    assert res["tokens"] == ntok == len(s) - 1
    assert res["loss"] == pytest.approx(loss / ntok, rel=1e-5)


# -- when training stops (the budget semantics) -------------------------------------------------------
def _constant_validation(tr, monkeypatch, loss=2.0):
    """Make every validation return the same loss (a run that has stopped improving)."""
    monkeypatch.setattr(
        tr, "evaluate", lambda corpus: {"loss": loss, "perplexity": np.exp(loss), "tokens": 10}
    )


def test_a_budget_alone_has_no_epoch_cap(corpus, tmp_path):
    from rnnlm.training.config import DEFAULT_EPOCHS

    tr = _trainer(corpus, tmp_path, epochs=None, time_budget=4.0, schedule="cosine", patience=0)
    st = tr.fit()
    assert st["stopped"] == "time_budget" and st["epoch"] > DEFAULT_EPOCHS
    assert 4.0 <= st["elapsed"] < 8.0
    # without a budget and without epochs: the default number of epochs
    st2 = _trainer(corpus, tmp_path / "b", epochs=None, schedule="constant").fit()
    assert st2["stopped"] == "epochs" and st2["epoch"] == DEFAULT_EPOCHS


def test_a_plateau_anneals_then_stops_the_run(corpus, tmp_path, monkeypatch):
    tr = _trainer(corpus, tmp_path, epochs=None, time_budget=60.0, schedule="cosine", patience=3)
    _constant_validation(tr, monkeypatch)
    best = {}
    real_validate = tr._validate

    def validate():
        out = real_validate()
        if not best:
            best.update(tr.model.get_params())  # the parameters of the only best validation (the first)
        return out

    monkeypatch.setattr(tr, "_validate", validate)
    restored = []
    real_set = tr.model.set_params
    # (set_params also runs before training, when the compilation's parameters are put back)
    monkeypatch.setattr(tr.model, "set_params", lambda p: (best and restored.append(p), real_set(p)))
    st = tr.fit()
    events = [h["event"] for h in st["history"] if h["event"] in ("valid", "anneal")]
    # the first evaluation, three without a new best (the third starts the annealing: back to the best
    # parameters; its record follows), then three more without one -> stop; the rate is halved at every
    # annealing evaluation
    assert st["stopped"] == "early_stopping"
    assert events == ["valid"] * 3 + ["anneal"] + ["valid"] * 4
    lrs = [h["lr"] for h in st["history"] if h["event"] == "valid"]
    assert lrs[3] / lrs[2] < 0.55
    assert all(b / a == pytest.approx(0.5) for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert len(restored) == 1 and all(np.array_equal(restored[0][k], v) for k, v in best.items())
    assert st["elapsed"] < 40


def test_a_rate_below_its_floor_ends_the_run(corpus, tmp_path, monkeypatch):
    tr = _trainer(
        corpus,
        tmp_path,
        epochs=20,
        schedule="plateau",
        anneal=0.1,
        lr_floor=0.005,
        patience=0,
    )
    _constant_validation(tr, monkeypatch)
    st = tr.fit()
    # one validation per epoch, each cutting lr by 10 after the first: 0.01, 1e-3, 1e-4, 1e-5 -- below the
    # floor 0.005 × 0.01 = 5e-5, so training stops there, before any step at that rate
    assert st["stopped"] == "lr_floor" and st["epoch"] == 4
    assert [h["lr"] for h in st["history"] if h["event"] == "valid"] == pytest.approx(
        [0.01, 1e-3, 1e-4, 1e-5]
    )
    assert st["global_step"] == 4 * tr._steps_per_epoch


def test_validation_runs_on_the_clock_inside_an_epoch(corpus, tmp_path, monkeypatch):
    import time as _time

    tr = _trainer(corpus, tmp_path, epochs=1, valid_every_s=0.05, schedule="constant")
    real_step = tr.model.train_step

    def slow(*a, **k):
        _time.sleep(0.03)
        return real_step(*a, **k)

    monkeypatch.setattr(tr.model, "train_step", slow)
    st = tr.fit()
    steps = [h["step"] for h in st["history"] if h["event"] == "valid"]
    assert len(steps) >= 3 and steps[-1] == st["global_step"] and steps[0] < st["global_step"]


def test_newbob_converges_and_says_so(corpus, tmp_path, monkeypatch):
    tr = _trainer(corpus, tmp_path, optimizer="sgd", lr=0.5, epochs=20, schedule="newbob")
    losses = iter([3.0, 2.0, 1.999, 1.5, 1.4995] + [1.0] * 20)
    monkeypatch.setattr(
        tr, "evaluate", lambda c: (lambda v: {"loss": v, "perplexity": np.exp(v), "tokens": 5})(next(losses))
    )
    st = tr.fit()
    lrs = [h["lr"] for h in st["history"] if h["event"] == "valid"]
    assert st["stopped"] == "converged" and lrs == pytest.approx([0.5, 0.5, 0.25, 0.125, 0.125])


def test_words_only_in_held_out_text_become_the_unknown_token():
    from rnnlm.training.api import training_vocabulary

    sents = (
        [["a", "gnu"]]
        + [["a", "b"], ["b", "c"], ["a", "c"], ["zebra", "a"], ["c", "a", "b"]] * 3
        + [["b", "yak"]] * 3
    )
    sents += [["only", "held", "out"]]
    corpus = Corpus.from_tokens(sents)
    train = Corpus(corpus.vocab, corpus.sentences[:-4], "word")  # without "yak" and "only held out"
    train_words = {corpus.vocab.index_to_word[i] for i in np.unique(train.stream())}
    assert "held" not in train_words and "yak" not in train_words
    out = training_vocabulary(corpus, train, min_count=1)
    assert set(out.vocab.index_to_word) == train_words | {"SENTENCE_START", "SENTENCE_END", "UNKNOWN_TOKEN"}
    unk = out.vocab.unk_index
    for old, new in zip(corpus.sentences, out.sentences, strict=True):
        words = corpus.vocab.decode(old)
        want = [w if w in train_words else "UNKNOWN_TOKEN" for w in words]
        assert out.vocab.decode(new) == want and len(new) == len(old)
    assert out.stats["rare_in_training"] == len(
        set(corpus.vocab.index_to_word) - train_words - {"UNKNOWN_TOKEN"}
    )
    assert int((out.stream() == unk).sum()) == out.stats["unknown_tokens"] > 0
    assert (
        training_vocabulary(out, Corpus(out.vocab, out.sentences[:-4], "word"), 1) is out
    )  # nothing to fold
    # min_count=2: words seen once in training are read as the unknown token too, so it is learned
    once = [
        w for w in train_words if corpus.vocab.count(w) == 1 and w not in ("SENTENCE_START", "SENTENCE_END")
    ]
    two = training_vocabulary(corpus, train, min_count=2)
    assert once and not set(once) & set(two.vocab.index_to_word)
