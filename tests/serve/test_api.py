"""The JSON API of ``rnnlm serve`` against live servers on 127.0.0.1: its numbers are the model's own and
the CLI's, bad requests get 413/415/422 with a message and the server keeps serving, the limits hold."""

from __future__ import annotations

import json
import math
import re
import threading
import time

import httpx
import numpy as np
import pytest

from rnnlm.cli.app import main
from rnnlm.serve import Limits
from rnnlm.serve.app import CSP
from rnnlm.training.checkpoint import load_model, read_checkpoint
from tests.serve.conftest import LINKER, make_service

TEXT = "the cat sat on the mat .\nthe zebra looked at a tree today .\nmy friend found the old bridge again ."


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def cli_json(capsys, *argv):
    return json.loads(run_cli(capsys, *argv, "--json"))


def post(server, path, body, **kw):
    return httpx.post(server.url + path, json=body, timeout=60, **kw)


def events_of(response_text: str) -> list:
    """Parse a text/event-stream body: [(event, data), ...]."""
    out = []
    for block in response_text.strip().split("\n\n"):
        kind = re.search(r"^event: (.*)$", block, re.M).group(1)
        data = json.loads("".join(re.findall(r"^data: (.*)$", block, re.M)))
        out.append((kind, data))
    return out


# --------------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------------


def test_score_gives_the_models_own_log_probabilities(word_server, word_run):
    model, vocab, _ = load_model(word_run, linker=LINKER)
    got = post(word_server, "/api/score", {"text": TEXT, "top": 5}).json()
    assert got["level"] == "word" and got["format"] == "lines"
    tokens = got["tokens"]
    # START is not shown; every other token is, END included (predicted, flagged special).
    lines = [ln.split() for ln in TEXT.splitlines()]
    assert [t["text"] for t in tokens] == [w for ln in lines for w in [*ln, "SENTENCE_END"]]
    assert [t["oov"] for t in tokens] == [t["text"] not in vocab for t in tokens]
    assert "zebra" in [t["text"] for t in tokens if t["oov"]] and tokens[0]["text"] == "the"
    assert [t["special"] for t in tokens] == [t["text"] == "SENTENCE_END" for t in tokens]
    k = 0
    for i, ln in enumerate(lines):
        ids = np.array([vocab.start_index, *vocab.encode(ln), vocab.end_index], np.int32)
        d = model.distribution(ids[:-1, None])[:, 0].astype(np.float64)  # the model's log p(. | context)
        for t in range(len(ids) - 1):
            tok = tokens[k]
            k += 1
            own = d[t, ids[t + 1]]
            assert tok["predicted"] and tok["sentence"] == i and tok["id"] == ids[t + 1]
            assert tok["logprob"] == pytest.approx(own, abs=2e-5)
            assert tok["prob"] == pytest.approx(math.exp(own), rel=1e-4)
            assert tok["surprisal_bits"] == pytest.approx(-own / math.log(2), abs=3e-5)
            assert abs(tok["rank"] - (1 + int((d[t] > own + 1e-6).sum()))) <= 1
            best = np.argsort(-d[t], kind="stable")[:5]
            assert [a["prob"] for a in tok["top"]] == pytest.approx(np.exp(d[t, best]).tolist(), rel=1e-4)
            assert [a["token"] for a in tok["top"]] == [
                vocab.index_to_word[j] for j in [a["id"] for a in tok["top"]]
            ]
    assert k == len(tokens)
    total = sum(t["logprob"] for t in tokens)
    assert got["logprob"] == pytest.approx(total, rel=1e-6)
    assert got["perplexity"] == pytest.approx(math.exp(-total / len(tokens)), rel=1e-6)
    assert got["bits_per_token"] == pytest.approx(math.log2(got["perplexity"]), rel=1e-9)


def test_score_perplexity_is_the_cli_perplexity(
    word_server, word_run, char_server, char_ckpt, tmp_path, capsys
):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT + "\n", encoding="utf-8")
    want = cli_json(capsys, "perplexity", word_run, text_file)
    got = post(word_server, "/api/score", {"text": TEXT}).json()
    assert got["perplexity"] == want["perplexity"]  # same compiled function, same batches: the same number
    for key in ("predicted_tokens", "sentences", "words", "oov", "nll", "logprob", "bits_per_token"):
        assert got[key] == want[key], key
    # Char level: one stream, the first character given.
    char_text = "the cat sat on the mat .\nthe dog ran to the river again .\n"
    (tmp_path / "char.txt").write_text(char_text, encoding="utf-8")
    want = cli_json(capsys, "perplexity", char_ckpt, tmp_path / "char.txt")
    got = post(char_server, "/api/score", {"text": char_text}).json()
    assert got["perplexity"] == want["perplexity"] and got["predicted_tokens"] == want["predicted_tokens"]
    assert got["level"] == "char" and "".join(t["text"] for t in got["tokens"]) == char_text
    assert [t["predicted"] for t in got["tokens"]] == [False] + [True] * (len(char_text) - 1)


# --------------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------------

GENERATE_CASES = [
    ({"seed": 3, "num": 3}, ["--seed", "3", "--num", "3"]),
    (
        {"seed": 11, "num": 2, "temperature": 0.6, "top_k": 8, "prime": "the king", "max_length": 9},
        [
            "--seed",
            "11",
            "--num",
            "2",
            "--temperature",
            "0.6",
            "--top-k",
            "8",
            "--prime",
            "the king",
            "--max-length",
            "9",
        ],
    ),
    ({"mode": "greedy", "prime": "my friend"}, ["--mode", "greedy", "--prime", "my friend"]),
    (
        {"mode": "beam", "beam_size": 3, "num": 2, "length_penalty": 0.5},
        ["--mode", "beam", "--beam-size", "3", "--num", "2", "--length-penalty", "0.5"],
    ),
]


@pytest.mark.parametrize("body,argv", GENERATE_CASES, ids=["sample", "sample-prime", "greedy", "beam"])
def test_generate_equals_the_cli(word_server, word_run, capsys, body, argv):
    want = cli_json(capsys, "generate", word_run, *argv)
    got = post(word_server, "/api/generate", body).json()
    assert got["samples"] == want["samples"]
    assert got["mode"] == want["mode"] and got["stopped"] is None
    if body.get("mode", "sample") == "sample":
        assert got["seed"] == body["seed"]


def test_stream_gives_the_same_tokens_as_they_are_drawn(word_server):
    body = {"seed": 5, "num": 3, "prime": "the old man", "temperature": 1.3}
    full = post(word_server, "/api/generate", body).json()
    r = post(word_server, "/api/generate/stream", body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = events_of(r.text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    start, done = events[0][1], events[-1][1]
    assert start["num"] == 3 and start["seed"] == 5 and start["prefix"]["tokens"] == ["the", "old", "man"]
    assert done["samples"] == full["samples"] and done["stopped"] is None
    for row, sample in enumerate(full["samples"]):
        mine = [d for k, d in events if k == "token" and d["row"] == row]
        assert [d["id"] for d in mine if not d["end"]] == sample["ids"]
        assert any(d["end"] for d in mine) == sample["ended"]
        assert sum(d["logprob"] for d in mine) == pytest.approx(sample["logprob"], abs=1e-9)


def test_tutorial_model_scores_and_generates_ids(serve_app, tutorial_model_npz, capsys):
    from rnnlm import inference

    server = serve_app(make_service(tutorial_model_npz))
    card = httpx.get(server.url + "/api/model").json()
    assert card["kind"] == "tutorial" and card["vocabulary"] is None and card["config"]["vocab_size"] == 8000
    want = run_cli(capsys, "generate", tutorial_model_npz, "--seed", "0", "--num", "2", "--max-length", "8")
    got = post(server, "/api/generate", {"seed": 0, "num": 2, "max_length": 8}).json()
    assert [s["text"] for s in got["samples"]] == want.splitlines()
    scored = post(server, "/api/score", {"text": "5 17 2\n40 4"}).json()
    model = load_model(tutorial_model_npz, linker=LINKER).model
    ppl = inference.perplexity(model, [np.array([0, 5, 17, 2, 1]), np.array([0, 40, 4, 1])])
    assert scored["perplexity"] == ppl.perplexity and [t["text"] for t in scored["tokens"]][:4] == [
        "5",
        "17",
        "2",
        "1",
    ]
    bad = post(server, "/api/score", {"text": "hello world"})
    assert bad.status_code == 422 and "token ids" in bad.json()["error"]
    assert post(server, "/api/fill", {"text": "a ___ b"}).status_code == 422


# --------------------------------------------------------------------------------------------------
# fill and the model card
# --------------------------------------------------------------------------------------------------


def test_fill_equals_the_cli_and_other_models_refuse_it(fill_server, fill_ckpt, word_server, capsys):
    text = "the ___ sat on the mat ."
    want = cli_json(capsys, "fill", fill_ckpt, text, "--top-k", "4")
    got = post(fill_server, "/api/fill", {"text": text, "top_k": 4}).json()
    assert got["candidates"] == want["candidates"] and len(got["candidates"]) == 4
    bad = post(fill_server, "/api/fill", {"text": "no blank here"})
    assert bad.status_code == 422 and "exactly one blank" in bad.json()["error"]
    for path, body in (("/api/score", {"text": "a b"}), ("/api/generate", {})):
        r = post(fill_server, path, body)
        assert r.status_code == 422 and "fill" in r.json()["error"]
    r = post(word_server, "/api/fill", {"text": text})
    assert r.status_code == 422 and "bidirectional" in r.json()["error"]
    card = httpx.get(fill_server.url + "/api/model").json()
    assert card["task"] == "fill" and card["capabilities"] == {
        "score": False,
        "generate": False,
        "fill": True,
    }


def test_model_card_reads_the_checkpoint(word_server, word_run, char_server, char_ckpt):
    meta = read_checkpoint(word_run / "best.npz")["meta"]
    model, vocab, _ = load_model(word_run, linker=LINKER)
    card = httpx.get(word_server.url + "/api/model").json()
    assert card["name"] == "best.npz" and card["task"] == "lm" and card["level"] == "word"
    assert card["config"] == meta["model"] and card["parameters"] == model.n_parameters()
    assert (
        card["vocabulary"]["size"] == len(vocab)
        and card["vocabulary"]["unknown_token"] == vocab.unknown_token
    )
    assert card["vocabulary"]["most_frequent"][0] == [
        vocab.index_to_word[int(np.argmax(vocab.counts))],
        max(vocab.counts),
    ]
    st = meta["train_state"]
    assert card["history"]["source"] == "checkpoint"
    assert card["history"]["train"] == [
        [h["step"], h["train_loss"]] for h in st["history"] if "train_loss" in h
    ]
    assert card["history"]["valid"] == [
        [h["step"], h["valid_loss"]] for h in st["history"] if "valid_loss" in h
    ]
    assert len(card["history"]["valid"]) >= 2
    assert card["training"]["best_valid_perplexity"] == pytest.approx(math.exp(st["best_valid"]))
    assert card["training"]["global_step"] == st["global_step"]
    assert card["corpus"]["stats"]["sentences"] == 600  # from corpus.npz beside the checkpoint
    assert card["corpus"]["settings"]["tokenizer"] == "whitespace"
    rows = {r["name"]: r for r in card["baselines"]}
    assert set(rows) == {"kneser-ney 1-gram", "kneser-ney 2-gram", "kneser-ney 3-gram"}
    assert (
        rows["kneser-ney 2-gram"]["valid_perplexity"]
        == st["baselines"]["kneser-ney 2-gram"]["valid_perplexity"]
    )
    char = httpx.get(char_server.url + "/api/model").json()
    assert char["level"] == "char" and char["vocabulary"]["start_token"] is None
    assert [r["name"] for r in char["baselines"]] == ["kneser-ney 5-gram", "add-one unigram"]
    assert char["history"]["valid"] == [[50, pytest.approx(2.85)], [100, pytest.approx(2.45)]]
    assert char["training"]["best_valid_loss"] == 2.45


# --------------------------------------------------------------------------------------------------
# bad requests, limits, safety
# --------------------------------------------------------------------------------------------------

BAD = [
    (
        "/api/score",
        {"content": b'{"text": ', "headers": {"content-type": "application/json"}},
        422,
        "not valid JSON",
    ),
    (
        "/api/score",
        {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
        422,
        "JSON object",
    ),
    (
        "/api/score",
        {"content": b'{"text": NaN}', "headers": {"content-type": "application/json"}},
        422,
        "NaN",
    ),
    ("/api/score", {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 422, "UTF-8"),
    ("/api/score", {"content": b'{"text": "a"}', "headers": {"content-type": "text/plain"}}, 415, "JSON"),
    ("/api/score", {"json": {}}, 422, "text: required"),
    ("/api/score", {"json": {"text": 5}}, 422, "text: expected a string"),
    ("/api/score", {"json": {"text": "   "}}, 422, "empty"),
    ("/api/score", {"json": {"text": "a", "top": 999}}, 422, "top: must be an integer from 0 to 20"),
    ("/api/score", {"json": {"text": "a", "file": "/etc/passwd"}}, 422, "unknown field: 'file'"),
    ("/api/score", {"json": {"text": "a" * 20_001}}, 413, "20001 characters; the limit is 20000"),
    (
        "/api/score",
        {"content": b'{"text": "' + b"a" * 70_000 + b'"}', "headers": {"content-type": "application/json"}},
        413,
        "the limit is 65536",
    ),
    ("/api/generate", {"json": {"temperature": 0}}, 422, "temperature: must be a number > 0"),
    ("/api/generate", {"json": {"temperature": "hot"}}, 422, "temperature: expected a number"),
    ("/api/generate", {"json": {"mode": "telepathy"}}, 422, "mode: must be one of sample, greedy, beam"),
    ("/api/generate", {"json": {"num": 0}}, 422, "num: must be an integer from 1 to 8"),
    ("/api/generate", {"json": {"max_length": 100_000}}, 422, "max_length"),
    (
        "/api/generate",
        {"json": {"min_length": 9, "max_length": 3}},
        422,
        "min_length (9) is larger than max_length (3)",
    ),
    ("/api/generate", {"json": {"seed": -1}}, 422, "seed"),
    ("/api/generate", {"json": {"allow_unk": "yes"}}, 422, "allow_unk: expected true or false"),
    ("/api/generate/stream", {"json": {"top_k": -2}}, 422, "top_k"),
    ("/api/generate/stream", {"json": {"min_length": 9, "max_length": 3}}, 422, "min_length"),
    ("/api/fill", {"json": {"text": ["a"]}}, 422, "text: expected a string"),
]


@pytest.mark.parametrize("path,kwargs,status,fragment", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_requests_get_a_status_and_a_message_and_the_server_keeps_serving(
    word_server, path, kwargs, status, fragment
):
    r = httpx.post(word_server.url + path, timeout=60, **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and fragment in body["error"] and "Traceback" not in body["error"]
    ok = post(word_server, "/api/score", {"text": "the cat sat ."})
    assert ok.status_code == 200 and ok.json()["predicted_tokens"] == 5


def test_routes_methods_and_security_headers(word_server):
    page = httpx.get(word_server.url + "/")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP and "style-src 'self'" in CSP
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    html = page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    js = httpx.get(word_server.url + "/static/app.js")
    assert js.headers["content-type"].startswith("text/javascript") and "innerHTML" not in js.text
    assert "eval(" not in js.text and "new Function" not in js.text
    css = httpx.get(word_server.url + "/static/style.css")
    assert css.headers["content-type"].startswith("text/css")
    for path in ("/static/../setup.cfg", "/static/index.html", "/etc/passwd", "/api/nope"):
        r = httpx.get(word_server.url + path)
        assert r.status_code == 404 and r.json() == {"error": "not found"}
    r = httpx.get(word_server.url + "/api/score")
    assert r.status_code == 405 and r.json() == {"error": "method not allowed"}
    api = httpx.get(word_server.url + "/api/model")
    assert api.headers["content-security-policy"] == CSP and api.headers["cache-control"] == "no-store"
    # Bound to loopback, the server answers only to its own names (no DNS rebinding).
    r = httpx.get(word_server.url + "/api/model", headers={"host": "evil.example"})
    assert r.status_code == 400
    assert httpx.get(f"http://localhost:{word_server.port}/api/model").status_code == 200


# --------------------------------------------------------------------------------------------------
# time limit, bounded generations, stop
# --------------------------------------------------------------------------------------------------


class SlowModel:
    """A model whose decoding step takes ``delay`` seconds more (to watch limits act)."""

    def __init__(self, model, delay):
        self._model = model
        self.delay = delay

    def __getattr__(self, name):
        return getattr(self._model, name)

    def step_function(self, batch_size=None):
        fn = self._model.step_function(batch_size)

        def step(*args):
            time.sleep(self.delay)
            return fn(*args)

        return step


def slow_server(serve_app, word_run, **limits):
    service = make_service(word_run, Limits(**limits))
    service.model = SlowModel(service.model, 0.01)
    return serve_app(service)


def test_generation_stops_at_the_time_limit(serve_app, word_run):
    server = slow_server(serve_app, word_run, time_limit_s=1.0)
    body = {"seed": 1, "max_length": 500, "prime": "the"}
    t0 = time.monotonic()
    events = events_of(post(server, "/api/generate/stream", {**body, "num": 1, "min_length": 500}).text)
    assert time.monotonic() - t0 < 5
    done = events[-1][1]
    assert events[-1][0] == "done" and done["stopped"] == "time_limit"
    tokens = [d for k, d in events if k == "token"]
    assert 5 < len(tokens) < 500 and done["samples"][0]["ids"] == [d["id"] for d in tokens]
    assert not done["samples"][0]["ended"]
    got = post(server, "/api/generate", {**body, "min_length": 500}).json()
    assert got["stopped"] == "time_limit" and 5 < len(got["samples"][0]["ids"]) < 500


def test_generations_are_bounded_and_stop_frees_the_slot(serve_app, word_run):
    server = slow_server(serve_app, word_run, max_generations=1, queue_wait_s=0.3, time_limit_s=30)
    long = {"seed": 2, "max_length": 500, "min_length": 500}  # ~5 s of steps
    received = []
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", server.url + "/api/generate/stream", json=long) as stream,
    ):
        lines = stream.iter_lines()
        while sum(1 for ln in received if ln.startswith("event: token")) < 3:
            received.append(next(lines))
        # The one slot is taken: another generation waits 0.3 s, then gets 503 with Retry-After.
        busy = post(server, "/api/generate", {"seed": 1, "max_length": 3})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert "busy" in busy.json()["error"]
        # Scoring is not a generation: it is served meanwhile.
        assert post(server, "/api/score", {"text": "the cat ."}).status_code == 200
    # The client went away (the page's stop button aborts its request): the generation stops and its
    # slot is free again long before its 5 s would have run out.
    t0 = time.monotonic()
    while True:
        r = post(server, "/api/generate", {"seed": 1, "max_length": 3})
        if r.status_code == 200 or time.monotonic() - t0 > 3:
            break
    assert r.status_code == 200 and time.monotonic() - t0 < 3


def test_requests_in_threads_share_one_model_safely(word_run):
    """The service itself (no HTTP): concurrent calls give the sequential answers."""
    from rnnlm.serve.params import generate_params, score_params

    service = make_service(word_run)
    limits = service.limits
    jobs = [("score", score_params({"text": TEXT}, limits))] + [
        ("generate", generate_params({"seed": s, "num": 2, "max_length": 12}, limits)) for s in range(6)
    ]
    want = [getattr(service, kind)(p) for kind, p in jobs]
    got = [None] * len(jobs)

    def work(i):
        got[i] = getattr(service, jobs[i][0])(jobs[i][1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
