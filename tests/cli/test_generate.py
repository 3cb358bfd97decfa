"""``rnnlm generate | score | perplexity | fill`` on small checkpoints written by save_checkpoint."""

import json
import math

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.cli.app import main
from rnnlm.data import Corpus, Vocabulary, prepare
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.training.checkpoint import save_checkpoint
from tests.inference.test_inference import WORDS, _bigram_params

LINKER = engine.default_linker()


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv):
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def bigram_ckpt(tmp_path_factory):
    """The hand-set bigram model of test_sample, saved with a whitespace/lines corpus."""
    vocab = Vocabulary(WORDS)
    corpus = Corpus(
        vocab, [], "word", settings={"format": "lines", "tokenizer": "whitespace", "lowercase": False}
    )
    model = LanguageModel(
        ModelConfig(vocab_size=len(WORDS), hidden_dim=len(WORDS), output_bias=False),
        params=_bigram_params(),
        linker=LINKER,
    )
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "bigram.npz", model, corpus=corpus)


@pytest.mark.core
def test_generate_greedy_beam_and_sample(bigram_ckpt, capsys):
    assert run_json(capsys, "generate", bigram_ckpt, "--mode", "greedy")["samples"][0]["text"] == "a c"
    beam = run_json(capsys, "generate", bigram_ckpt, "--mode", "beam", "--beam-size", "2")["samples"]
    assert [b["text"] for b in beam] == ["b", "a c"]
    assert beam[0]["logprob"] == pytest.approx(math.log(0.27 * 0.9), abs=1e-5)
    rc, out, err = run(capsys, "generate", bigram_ckpt, "--num", "40", "--seed", "3", "--temperature", "2")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 40 and all(ln and "UNKNOWN_TOKEN" not in ln for ln in lines)
    assert run(capsys, "generate", bigram_ckpt, "--num", "40", "--seed", "3", "--temperature", "2")[1] == out
    # A prime is continued: after "a" greedy takes c, then END.
    primed = run_json(capsys, "generate", bigram_ckpt, "--mode", "greedy", "--prime", "a")["samples"][0]
    assert primed["text"] == "a c" and primed["prefix_ids"] == [2] and primed["ids"] == [4]


def test_generate_prime_file_and_bad_flags(bigram_ckpt, tmp_path, capsys):
    prime = tmp_path / "prime.txt"
    prime.write_text("a c\nb c\nb\n", encoding="utf-8")  # three sentences; the last one is continued
    got = run_json(capsys, "generate", bigram_ckpt, "--mode", "greedy", "--prime-file", prime)["samples"][0]
    assert got["prefix_ids"] == [3] and got["text"].startswith("b")
    for argv, fragment in (
        (["--temperature", "0"], "positive"),
        (["--prime", "a", "--prime-file", prime], "not allowed"),
        (["--min-length", "5", "--max-length", "2"], "min_length"),
    ):
        rc, out, err = run(capsys, "generate", bigram_ckpt, *argv)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and fragment in err, err
    rc, _, err = run(capsys, "generate", tmp_path / "missing.npz")
    assert rc == 2 and "no such file" in err


@pytest.mark.core
def test_score_rank_and_perplexity(bigram_ckpt, tmp_path, capsys):
    text = tmp_path / "nbest.txt"
    text.write_text("a c\n\nb\nzzz\n", encoding="utf-8")
    got = run_json(capsys, "score", bigram_ckpt, text)
    rows = got["sentences"]
    assert [r["text"] for r in rows] == ["a c", "b", "zzz"] and [r["line"] for r in rows] == [1, 3, 4]
    np.testing.assert_allclose(
        [r["logprob"] for r in rows], np.log([0.33 * 0.36, 0.27 * 0.9, 0.4]), atol=1e-5
    )
    assert [r["tokens"] for r in rows] == [3, 2, 2] and [r["oov"] for r in rows] == [0, 0, 1]
    ranked = run_json(capsys, "score", bigram_ckpt, text, "--rank")["sentences"]
    assert [r["text"] for r in ranked] == ["zzz", "b", "a c"]
    rc, out, err = run(capsys, "score", bigram_ckpt, text, "--rank")
    assert rc == 0 and out.splitlines()[1].endswith("\tzzz") and "perplexity" in err
    # The one perplexity definition: words and END predicted, START not; OOV scored as UNK, counted.
    probs = [0.33, 0.36, 1.0, 0.27, 0.9, 0.4, 1.0]
    want = math.exp(-sum(map(math.log, probs)) / 7)
    ppl = run_json(capsys, "perplexity", bigram_ckpt, text)
    assert ppl["perplexity"] == pytest.approx(want, rel=1e-5)
    assert ppl["predicted_tokens"] == 7 and ppl["oov"] == 1 and ppl["words"] == 4
    rc, out, _ = run(capsys, "perplexity", bigram_ckpt, text)
    assert rc == 0 and f"perplexity {want:.3f}" in out and "out-of-vocabulary: 1 of 4" in out
    rc, out, _ = run(capsys, "perplexity", "--help")
    assert "not the start token" in " ".join(out.split())


def test_tutorial_model_generates_ids_and_cannot_score(tutorial_model_npz, tmp_path, capsys):
    rc, out, err = run(
        capsys, "generate", tutorial_model_npz, "--num", "3", "--seed", "0", "--max-length", "15"
    )
    assert rc == 0, err
    assert "no vocabulary" in err and "token ids" in err
    lines = out.splitlines()
    assert len(lines) == 3
    for ln in lines:
        ids = [int(t) for t in ln.split()]
        assert 1 <= len(ids) <= 15 and 7999 not in ids and 0 not in ids
    (tmp_path / "t.txt").write_text("hello\n")
    rc, _, err = run(capsys, "score", tutorial_model_npz, tmp_path / "t.txt")
    assert rc == 2 and "no vocabulary" in err


def test_fill_command(tmp_path, capsys):
    words = ["SENTENCE_START", "SENTENCE_END", "the", "cat", "dog", "sat", "on", "mat", "UNKNOWN_TOKEN"]
    vocab = Vocabulary(words)
    corpus = Corpus(vocab, [], "word", settings={"format": "lines", "tokenizer": "whitespace"})
    cfg = ModelConfig(vocab_size=len(words), hidden_dim=6, cell="gru", bidirectional=True)
    path = save_checkpoint(tmp_path / "fill.npz", LanguageModel(cfg, seed=3, linker=LINKER), corpus=corpus)
    got = run_json(capsys, "fill", path, "the ___ sat on the mat", "--top-k", "3")["candidates"]
    assert len(got) == 3 and [c["prob"] for c in got] == sorted((c["prob"] for c in got), reverse=True)
    assert all(c["word"] in words[2:8] for c in got)
    rc, out, _ = run(capsys, "fill", path, "the ___ sat on the mat", "--top-k", "3")
    assert rc == 0 and [ln.split("\t")[1] for ln in out.splitlines()] == [c["word"] for c in got]
    rc, _, err = run(capsys, "fill", path, "no blank")
    assert rc == 2 and "exactly one blank" in err


def test_char_model_generate_and_perplexity(tmp_path, capsys):
    from rnnlm import inference as sample

    text = tmp_path / "tiny.txt"
    text.write_text("abc de\nfg.\n\nab cd\n", encoding="utf-8")
    corpus = prepare(text, level="char", format="text")
    cfg = ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=6, cell="gru", embedding_dim=4)
    model = LanguageModel(cfg, seed=2, linker=LINKER)
    path = save_checkpoint(tmp_path / "char.npz", model, corpus=corpus)
    got = run_json(
        capsys, "generate", path, "--prime", "x\nab", "--max-length", "12", "--num", "2", "--seed", "1"
    )
    for s in got["samples"]:
        assert (
            len(s["ids"]) == 12
            and s["text"].startswith("ab")
            and s["prefix_ids"] == list(corpus.vocab.encode("ab"))
        )
    assert got["level"] == "char"
    ppl = run_json(capsys, "perplexity", path, text)
    want = sample.perplexity(model, corpus.encode_file(text), level="char")
    assert ppl["level"] == "char" and ppl["predicted_tokens"] == len(text.read_text()) - 1
    assert ppl["perplexity"] == pytest.approx(want.perplexity, rel=1e-5)
