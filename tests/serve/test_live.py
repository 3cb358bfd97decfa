"""50 concurrent requests against a live ``rnnlm serve`` on 127.0.0.1 return exactly the sequential results,
bad ones among them included, and the server goes on serving."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.serve.test_api import events_of

TEXTS = [
    "the cat sat on the mat .",
    "my friend found the old bridge again .\nthe queen slept near the river at night .",
    "a small fox watched the garden in the morning .",
    "the zebra ran to the door today .",
    "the children looked at a tree .\nthe king walked past the window .\nthe dog sat on the house .",
]


def requests() -> list:
    """50 requests: (method, path, json body or raw bytes)."""
    out = []
    for i in range(15):
        out.append(("POST", "/api/score", {"text": TEXTS[i % len(TEXTS)], "top": 1 + i % 5}))
    for i in range(12):
        body = {"seed": i, "num": 1 + i % 3, "max_length": 6 + i, "temperature": 0.5 + 0.1 * i}
        if i % 4 == 1:
            body = {"mode": "greedy", "prime": "the old"}
        if i % 4 == 2:
            body = {"mode": "beam", "beam_size": 2 + i % 3, "max_length": 8}
        out.append(("POST", "/api/generate", body))
    for i in range(10):
        out.append(
            (
                "STREAM",
                "/api/generate/stream",
                {"seed": 100 + i, "num": 2, "prime": "a bird", "max_length": 10},
            )
        )
    for _ in range(5):
        out.append(("GET", "/api/model", None))
    out += [
        ("POST", "/api/score", {"text": "x" * 20_001}),  # 413
        ("POST", "/api/score", b'{"text": "unterminated'),  # 422
        ("POST", "/api/generate", {"temperature": -1}),  # 422
        ("POST", "/api/generate/stream", {"num": 99}),  # 422
        ("POST", "/api/score", b"{" + b" " * 70_000 + b"}"),  # 413
        ("POST", "/api/fill", {"text": "the ___ sat"}),  # 422: not a fill model
        ("POST", "/api/score", {"text": "the cat", "top": "5"}),  # 422
        ("GET", "/api/nothing", None),  # 404
    ]
    assert len(out) == 50
    return out


def send(client: httpx.Client, request) -> tuple:
    method, path, body = request
    if method == "GET":
        r = client.get(path)
    elif isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    if method == "STREAM" and r.status_code == 200:
        return r.status_code, events_of(r.text)
    return r.status_code, r.json()


def test_fifty_concurrent_requests_give_the_sequential_results(word_server):
    reqs = requests()
    with httpx.Client(base_url=word_server.url, timeout=120) as client:
        sequential = [send(client, r) for r in reqs]
    statuses = [s for s, _ in sequential]
    assert statuses.count(200) == 42 and statuses.count(413) == 2 and statuses.count(422) == 5
    assert statuses[-1] == 404

    def one(i):
        with httpx.Client(base_url=word_server.url, timeout=120) as client:
            return send(client, reqs[i])

    order = list(range(50))[::3] + list(range(50))[1::3] + list(range(50))[2::3]  # interleave the kinds
    with ThreadPoolExecutor(max_workers=50) as pool:
        concurrent = dict(zip(order, pool.map(one, order), strict=True))
    for i in range(50):
        assert concurrent[i] == sequential[i], (i, reqs[i])
    # ... and the server still serves.
    with httpx.Client(base_url=word_server.url, timeout=60) as client:
        assert send(client, reqs[0]) == sequential[0]
