"""The page of ``rnnlm serve`` in a real headless Chromium (Playwright): what a person sees matches the API.

Needs Chromium at /usr/bin/chromium (Debian's package; ``.ci/run`` installs it) and the ``playwright``
Python package; skipped with the reason otherwise. ``RNNLM_SCREENSHOTS=1`` also writes docs/serve-*.png.
"""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import SCREENSHOTS, make_service
from tests.serve.test_api import TEXT, SlowModel

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"

if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright package (pip install -e '.[test]')"
)
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    problems = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
    # No script error and no Content-Security-Policy violation on any page (Chromium also logs every
    # response with an error status, which the error tests ask for).
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []


def shot(pg, name: str) -> None:
    if SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        pg.screenshot(path=str(DOCS / f"serve-{name}.png"), full_page=True)


def open_page(pg, server):
    pg.goto(server.url + "/")
    expect(pg.locator("body[data-ready=true]")).to_have_count(1)


def expected_rgb(bits: float) -> tuple:
    """The page's colour scale (app.js: surprisalColour) recomputed from the API's surprisal."""
    t = max(0.0, min(bits / 16, 1.0))
    hue = round(120 * (1 - t), 1)
    r, g, b = colorsys.hls_to_rgb(hue / 360, 0.80, 0.75)
    return tuple(round(255 * c) for c in (r, g, b))


def rgb(css: str) -> tuple:
    return tuple(int(float(x)) for x in re.findall(r"[\d.]+", css)[:3])


def test_score_colours_and_popup_match_the_api(page, word_server):
    api = httpx.post(word_server.url + "/api/score", json={"text": TEXT, "top": 5}, timeout=60).json()
    open_page(page, word_server)
    page.fill("#score-text", TEXT)
    page.click("#score-btn")
    spans = page.locator("#score-tokens .tok")
    expect(spans).to_have_count(len(api["tokens"]))
    shown = page.eval_on_selector_all(
        "#score-tokens .tok",
        "els => els.map(e => [e.textContent, getComputedStyle(e).backgroundColor, "
        "e.classList.contains('oov')])",
    )
    for tok, (text, colour, oov) in zip(api["tokens"], shown, strict=True):
        assert text == ("⏎" if tok["text"] == "SENTENCE_END" else tok["text"])
        assert oov == tok["oov"]
        want = expected_rgb(tok["surprisal_bits"])
        assert all(abs(a - b) <= 1 for a, b in zip(rgb(colour), want, strict=True)), (tok, colour, want)
    summary = page.text_content("#score-summary")
    assert (
        f"perplexity {api['perplexity']:.3f}" in summary
        and f"{api['bits_per_token']:.3f} bits/token" in summary
    )
    # Hover: the popup shows the token's probability, rank and top-5 at that position.
    oov_index = next(i for i, t in enumerate(api["tokens"]) if t["oov"])
    for i in (1, oov_index, 6):
        tok = api["tokens"][i]
        page.hover(f'#score-tokens .tok[data-i="{i}"]')
        expect(page.locator("#popup")).to_be_visible()
        expect(page.locator("#popup")).to_have_attribute("data-i", str(i))
        assert page.text_content("#pop-token") == json.dumps(tok["text"])
        prob = float(page.text_content("#pop-prob").split()[0])
        assert prob == pytest.approx(tok["prob"], rel=1e-3)
        assert page.text_content("#pop-rank") == f"{tok['rank']} of {api['vocab_size']}"
        assert float(page.text_content("#pop-bits").split()[0]) == pytest.approx(
            tok["surprisal_bits"], abs=0.006
        )
        top = page.eval_on_selector_all(
            "#pop-top li",
            "els => els.map(e => [e.querySelector('code').textContent, "
            "e.querySelector('.alt-prob').textContent])",
        )
        assert [json.loads(t) for t, _ in top] == [a["token"] for a in tok["top"]]
        assert [float(p) for _, p in top] == pytest.approx([a["prob"] for a in tok["top"]], rel=1e-3)
        assert page.is_visible("#pop-oov") == tok["oov"]
    page.hover(f'#score-tokens .tok[data-i="{oov_index}"]')
    expect(page.locator("#pop-oov")).to_contain_text("unknown word")
    shot(page, "score")


def test_generate_with_a_seed_shows_the_cli_text(page, word_server, word_run, capsys):
    from rnnlm.cli.app import main

    assert main(["generate", str(word_run), "--seed", "7", "--num", "3", "--prime", "the old man"]) == 0
    want = capsys.readouterr().out.splitlines()
    open_page(page, word_server)
    page.click("#tab-generate")
    page.fill("#gen-prime", "the old man")
    page.fill("#gen-seed", "7")
    page.fill("#gen-num", "3")
    page.click("#gen-btn")
    expect(page.locator("#gen-status")).to_have_attribute("data-state", "done")
    rows = page.eval_on_selector_all("#gen-output .sample", "els => els.map(e => e.textContent)")
    assert rows == want
    streamed = page.locator("#gen-output .gtok").count()
    body = {"seed": 7, "num": 3, "prime": "the old man"}
    api = httpx.post(word_server.url + "/api/generate", json=body, timeout=60).json()
    assert streamed == sum(len(s["ids"]) for s in api["samples"])  # one span per streamed token
    assert "seed 7" in page.text_content("#gen-status")
    shot(page, "generate")


def test_stop_button_stops_a_generation(page, serve_app, char_ckpt):
    from rnnlm.serve import Limits

    service = make_service(char_ckpt, Limits(max_generations=1, queue_wait_s=0.3))
    service.model = SlowModel(service.model, 0.02)  # 500 characters: 10 s
    server = serve_app(service)
    open_page(page, server)
    page.click("#tab-generate")
    page.fill("#gen-maxlen", "500")
    page.click("#gen-btn")
    expect(page.locator("#gen-output .gtok").nth(3)).to_be_attached()
    page.click("#gen-stop")
    expect(page.locator("#gen-status")).to_have_attribute("data-state", "cancelled")
    n = page.locator("#gen-output .gtok").count()
    assert 3 < n < 500
    # The server stopped too: its only generation slot is free again at once.
    page.fill("#gen-maxlen", "5")
    page.click("#gen-btn")
    expect(page.locator("#gen-status")).to_have_attribute("data-state", "done", timeout=5_000)
    assert page.is_hidden("#message")


def test_fill_a_blank(page, fill_server):
    api = httpx.post(
        fill_server.url + "/api/fill", json={"text": "the ___ sat on the mat .", "top_k": 5}
    ).json()
    open_page(page, fill_server)
    expect(page.locator("#view-fill")).to_be_visible()  # a fill model opens on Fill
    assert page.is_disabled("#tab-score") and page.is_disabled("#tab-generate")
    page.fill("#fill-text", "the ___ sat on the mat .")
    page.click("#fill-btn")
    expect(page.locator("#fill-results .candidate")).to_have_count(5)
    got = page.eval_on_selector_all(
        "#fill-results .candidate",
        "els => els.map(e => [e.querySelector('.word').textContent, e.querySelector('.prob').textContent])",
    )
    assert [w for w, _ in got] == [c["word"] for c in api["candidates"]]
    assert [float(p) for _, p in got] == pytest.approx([c["prob"] for c in api["candidates"]], rel=1e-3)
    shot(page, "fill")


def test_model_card_shows_sizes_history_and_baselines(page, word_server):
    card = httpx.get(word_server.url + "/api/model").json()
    open_page(page, word_server)
    page.click("#tab-model")
    model_table = page.text_content("#card-model")
    assert f"{card['parameters']:,}" in model_table and card["config"]["cell"] in model_table
    assert f"{card['vocabulary']['size']}" in page.text_content("#card-vocab")
    assert f"{card['training']['best_valid_perplexity']:.3f}" in page.text_content("#card-training")
    assert "600" in page.text_content("#card-corpus")  # sentences, from corpus.npz
    rows = page.eval_on_selector_all("#card-baselines tr", "els => els.map(e => e.textContent)")
    assert len(rows) == 1 + len(card["baselines"]) and "kneser-ney 3-gram" in rows[3]
    assert card["history"]["train"] and card["history"]["valid"]
    for name in ("train", "valid"):
        points = page.get_attribute(f"#loss-curve .curve-{name}", "points").split()
        assert len(points) == len(card["history"][name])
    assert page.locator("#loss-curve .dot-valid").count() == len(card["history"]["valid"])
    shot(page, "model")


def test_errors_are_shown_as_messages(page, word_server):
    open_page(page, word_server)
    page.fill("#score-text", "a" * 20_001)
    page.click("#score-btn")
    expect(page.locator("#message")).to_have_text("Error 413: text: 20001 characters; the limit is 20000")
    page.click("#tab-generate")
    expect(page.locator("#message")).to_be_hidden()
    page.fill("#gen-temperature", "0")
    page.click("#gen-btn")
    expect(page.locator("#message")).to_contain_text("Error 422: temperature: must be a number > 0")
    expect(page.locator("#message")).to_have_attribute("data-status", "422")
    shot(page, "error")
    # The page (and the server) go on working.
    page.fill("#gen-temperature", "1")
    page.fill("#gen-seed", "1")
    page.click("#gen-btn")
    expect(page.locator("#gen-status")).to_have_attribute("data-state", "done")
    assert page.is_hidden("#message")
