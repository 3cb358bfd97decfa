"""Fixtures for ``rnnlm serve``: tiny checkpoints made in seconds, and live servers on the loopback address.

``word_run``: a run folder written by ``rnnlm.train`` (a GRU trained for a few dozen steps on a small
made-up corpus, one sentence per line) with Kneser-Ney baselines added to its ``best.npz`` the way the
n-gram baselines are stored (``train_state["baselines"]``). ``char_ckpt``: a char-level LSTM (random
weights) with a hand-written history. ``fill_ckpt``: a bidirectional fill model (random weights) on the
word corpus's vocabulary. Servers run uvicorn in a thread on 127.0.0.1 with a free port.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlm import engine

LINKER = engine.default_linker()
SUBJECTS = [
    "the cat",
    "the dog",
    "a bird",
    "my friend",
    "the old man",
    "the children",
    "a small fox",
    "the king",
    "the queen",
]
VERBS = ["sat on", "looked at", "ran to", "slept near", "found", "watched", "walked past"]
OBJECTS = [
    "the mat",
    "the house",
    "a tree",
    "the river",
    "the garden",
    "the door",
    "the window",
    "the old bridge",
]
ENDINGS = [".", "today .", "again .", "at night .", "in the morning ."]
#: Steps of training for ``word_run`` (more when screenshots are taken, so the pictures show a model that
#: has learnt something).
SCREENSHOTS = os.environ.get("RNNLM_SCREENSHOTS") == "1"
STEPS = 300 if SCREENSHOTS else 70  # an epoch is 34 steps


def corpus_lines(n: int = 600, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    return [f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)} {pick(ENDINGS)}" for _ in range(n)]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "story.txt"
    p.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def word_run(tmp_path_factory, corpus_file) -> Path:
    """A run folder (best.npz, checkpoint.npz, corpus.npz, log.jsonl) of a tiny trained word model."""
    from rnnlm.models.ngram import KneserNey
    from rnnlm.training.api import train
    from rnnlm.training.checkpoint import load_model, read_checkpoint, save_checkpoint
    from rnnlm.training.config import TrainConfig

    out = tmp_path_factory.mktemp("word-run")
    res = train(
        corpus_file,
        out,
        model={"hidden_dim": 24, "embedding_dim": 12, "cell": "gru"},
        config=TrainConfig(
            epochs=50,
            batch_size=16,
            max_length=16,
            valid_every=max(STEPS // 6, 1),
            max_steps=STEPS,
            seed=1,
            lr=0.02,
        ),
        prepare_options={"format": "lines", "tokenizer": "whitespace", "vocab_size": 40},
        linker=LINKER,
        progress=False,
    )
    # The n-gram baselines as another part of rnnlm stores them beside the training state.
    vocab = res.corpus.vocab
    baselines = {}
    for order in (1, 2, 3):
        kn = KneserNey(order).fit(res.splits["train"].sentences, len(vocab), start_id=vocab.start_index)
        baselines[f"kneser-ney {order}-gram"] = {
            "order": order,
            "valid_perplexity": kn.perplexity(res.splits["valid"].sentences),
        }
    ck = read_checkpoint(out / "best.npz")
    model = load_model(ck, linker=LINKER).model
    corpus_meta = {**ck["meta"]["corpus"], "vocab": ck["meta"]["vocab"]}
    save_checkpoint(
        out / "best.npz",
        model,
        corpus=corpus_meta,
        train_state={**ck["meta"]["train_state"], "baselines": baselines},
    )
    return out


@pytest.fixture(scope="session")
def char_ckpt(tmp_path_factory) -> Path:
    """A char-level LSTM (random weights) with a recorded history and baselines (a list of objects)."""
    from rnnlm.data import Vocabulary
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.checkpoint import save_checkpoint

    text = "\n".join(corpus_lines(200, seed=1)) + "\n"
    vocab = Vocabulary.build([list(text)], None, "\ufffd", reserved=())
    model = LanguageModel(
        ModelConfig(vocab_size=len(vocab), hidden_dim=16, cell="lstm", embedding_dim=8), seed=3, linker=LINKER
    )
    history = [{"event": "train", "step": s, "train_loss": 3.3 - 0.01 * s} for s in range(10, 110, 10)]
    history += [{"event": "valid", "step": s, "valid_loss": 3.25 - 0.008 * s} for s in (50, 100)]
    state = {
        "global_step": 100,
        "epoch": 1,
        "words": 12345,
        "elapsed": 9.5,
        "best_valid": 2.45,
        "history": history,
        "stopped": "epochs",
        "baselines": [
            {"name": "kneser-ney 5-gram", "order": 5, "valid_perplexity": 4.2},
            {"name": "add-one unigram", "valid_perplexity": 21.0},
        ],
    }
    meta = {
        "level": "char",
        "vocab": vocab.to_json(),
        "settings": {"format": "text", "level": "char"},
        "splitter": None,
    }
    return save_checkpoint(
        tmp_path_factory.mktemp("char") / "char.npz", model, corpus=meta, train_state=state
    )


@pytest.fixture(scope="session")
def fill_ckpt(tmp_path_factory, word_run, corpus_file) -> Path:
    """A bidirectional fill model (random weights; trained when screenshots are taken) with the word run's
    vocabulary and corpus settings."""
    if SCREENSHOTS:
        from rnnlm.training.api import train
        from rnnlm.training.config import TrainConfig

        out = tmp_path_factory.mktemp("fill-run")
        train(
            corpus_file,
            out,
            model={"hidden_dim": 24, "embedding_dim": 12, "cell": "gru"},
            task="fill",
            config=TrainConfig(epochs=50, batch_size=16, max_length=16, max_steps=STEPS, seed=1, lr=0.02),
            prepare_options={"format": "lines", "tokenizer": "whitespace", "vocab_size": 40},
            linker=LINKER,
            progress=False,
        )
        return out / "best.npz"
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.checkpoint import read_checkpoint, save_checkpoint

    meta = read_checkpoint(word_run / "best.npz")["meta"]
    C = len(meta["vocab"]["index_to_word"])
    model = LanguageModel(
        ModelConfig(vocab_size=C, hidden_dim=12, embedding_dim=8, cell="gru", bidirectional=True),
        seed=4,
        linker=LINKER,
    )
    corpus_meta = {**meta["corpus"], "vocab": meta["vocab"]}
    return save_checkpoint(tmp_path_factory.mktemp("fill") / "fill.npz", model, corpus=corpus_meta)


# --------------------------------------------------------------------------------------------------
# live servers
# --------------------------------------------------------------------------------------------------


class LiveServer:
    """uvicorn serving an app in a thread on 127.0.0.1:<free port>."""

    def __init__(self, app):
        import uvicorn

        from rnnlm.cli.serve import bind

        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
            )
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def make_service(path, limits=None):
    from rnnlm.serve import Limits, ModelService
    from rnnlm.training.checkpoint import load_model, resolve

    path = resolve(path)
    return ModelService(load_model(path, linker=LINKER), path, limits or Limits())


@pytest.fixture(scope="session")
def serve_app():
    """``serve_app(service) -> LiveServer``; every server is stopped at the end of the session."""
    from rnnlm.serve import create_app

    servers = []

    def start(service, allowed_hosts=("127.0.0.1", "localhost")):
        s = LiveServer(create_app(service, allowed_hosts=allowed_hosts))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def word_server(serve_app, word_run):
    from rnnlm.serve import Limits

    return serve_app(make_service(word_run, Limits(max_generations=2, queue_wait_s=120)))


@pytest.fixture(scope="session")
def char_server(serve_app, char_ckpt):
    return serve_app(make_service(char_ckpt))


@pytest.fixture(scope="session")
def fill_server(serve_app, fill_ckpt):
    return serve_app(make_service(fill_ckpt))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
