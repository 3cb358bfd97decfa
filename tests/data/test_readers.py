"""Readers: format detection, the streaming readers and what they repair or refuse."""

from __future__ import annotations

import random
import warnings

import pytest

from rnnlm.data import (
    Corpus,
    CorpusWarning,
    detect_format,
    prepare,
    read_jsonl,
    read_lines,
    read_reddit_csv,
    read_text,
)
from rnnlm.data.readers import (
    BINARY_MIN_BYTES,
    join_blank_lines,
    split_paragraphs,
    stream_lines,
    stream_paragraphs,
    stream_text,
    stream_units,
)
from rnnlm.errors import CorpusError
from tests.data.helpers import write


def test_auto_format_detection(tmp_path):
    cases = {
        "a.csv": ("body\nhi\n", "csv"),
        "a.jsonl": ('{"text": "hi"}\n', "jsonl"),
        "a.json": ('{"text": "hi"}\n', "jsonl"),
        "wiki.train.tokens": (" = Title = \n", "lines"),
        "objs.txt": ('{"text": "hi"}\n{"text": "ho"}\n', "jsonl"),
        "ptb.txt": ("the <unk> sat\n", "lines"),
        "plain.txt": ("Just some text.\n", "text"),
        "noext": ("Just some text.\n", "text"),
    }
    for name, (content, fmt) in cases.items():
        got, reason = detect_format(write(tmp_path / name, content))
        assert got == fmt, (name, reason)


def test_undecodable_bytes_are_replaced_counted_and_reported(tmp_path):
    p = write(tmp_path / "bad.txt", b"caf\xe9 ok\nzz \xff\xfe end \xef\xbf\xbd\n")
    with pytest.warns(CorpusWarning, match="3 undecodable"):
        c = prepare(p, format="lines")
    assert c.stats["replacement_chars"] == 3
    assert "caf\ufffd" in c.vocab and "\ufffd" in c.vocab


def test_cut_off_last_csv_row_is_dropped_with_a_warning(tmp_path):
    p = write(tmp_path / "cut.csv", 'body\n"Complete one."\n"Also, ""done""."\n"This one is cut mid')
    with pytest.warns(CorpusWarning, match="cut off"):
        docs = read_reddit_csv(p)
    assert docs == ["Complete one.", 'Also, "done".']
    whole = write(tmp_path / "whole.csv", 'body\n"Complete one."\nlast row\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_reddit_csv(whole) == ["Complete one.", "last row"]


# --------------------------------------------------------------------------------------------------
# one streaming read path: the convenience readers collect the streams
# --------------------------------------------------------------------------------------------------

MESSY = "\ufeffFirst para,\r\nline two.\n \t\n\nSecond\x0bpara.\n\n\n  \nthird\nlast line without newline"


def test_convenience_readers_are_the_collected_streams(tmp_path):
    p = write(tmp_path / "m.txt", MESSY.encode("utf-8") + b" \xff")
    with pytest.warns(CorpusWarning, match="1 undecodable"):
        text = read_text(p)
    assert text == MESSY.removeprefix("\ufeff") + " \ufffd"
    info: dict = {}
    assert "".join(stream_text(p, info)) == text and info["replacement_chars"] == 1
    assert info["bytes_read"] == p.stat().st_size
    with pytest.warns(CorpusWarning):
        assert read_lines(p) == list(stream_lines(p)) == [
            ln.removesuffix("\r") for ln in text.split("\n") if ln.strip()
        ]
    assert list(stream_paragraphs(p)) == split_paragraphs(text)
    assert "".join(join_blank_lines(stream_text(p))) == text


@pytest.mark.parametrize("lines", [["a\n", " \n", "\n", "b\n"], ["\n", "\n", "x"], ["a \n", "\t\n"], ["q"]])
def test_paragraphs_streamed_line_by_line_equal_splitting_the_whole_text(tmp_path, lines):
    p = write(tmp_path / "p.txt", "".join(lines))
    assert list(stream_paragraphs(p)) == split_paragraphs("".join(lines))


# --------------------------------------------------------------------------------------------------
# binary files are refused; text with a few bad bytes loads
# --------------------------------------------------------------------------------------------------


def noise(n: int, seed: int = 0, nul: bool = True) -> bytes:
    data = random.Random(seed).randbytes(n)
    return data if nul else data.replace(b"\x00", b"\x01")


def test_binary_files_are_refused_with_one_line_naming_the_file(tmp_path):
    cases = {
        "noise.txt": (noise(4096), "NUL bytes in its first 4,096 bytes"),
        "noise.csv": (noise(4096, nul=False), "of its first 4,096 bytes are not valid UTF-8"),
        "big.bin": (noise(200_000, seed=1), "NUL bytes in its first 65,536 bytes"),
    }
    for name, (data, why) in cases.items():
        p = write(tmp_path / name, data)
        for read in (prepare, read_text, read_lines, read_reddit_csv, read_jsonl, detect_and_read):
            with pytest.raises(CorpusError) as info:
                read(p)
            message = str(info.value)
            assert message.startswith(f"{p}: looks binary, not a text corpus (") and why in message, message
            assert "\n" not in message
        with pytest.raises(CorpusError, match="looks binary"):
            Corpus.from_tokens([["a"]]).encode_file(p)


def detect_and_read(p):
    return list(stream_units(p, detect_format(p)[0], {})[0])


def test_text_with_a_few_bad_bytes_still_loads_and_counts_them(tmp_path):
    text = "Le café est très bon. Où est la gare ? Voilà, merci beaucoup.\n" * 40
    latin1 = write(tmp_path / "latin1.txt", text.encode("latin-1"))  # 4 invalid bytes in 63
    with pytest.warns(CorpusWarning, match="160 undecodable"):
        c = prepare(latin1, format="lines")
    assert c.stats["replacement_chars"] == 160 and len(c) == 40
    utf8 = write(tmp_path / "utf8.txt", text.encode("utf-8")[:1000] + b"\xff\xfe\x80" + text.encode("utf-8"))
    with pytest.warns(CorpusWarning, match="3 undecodable"):
        assert prepare(utf8, format="lines").stats["replacement_chars"] == 3


def test_binary_thresholds(tmp_path):
    def invalid(n_bad: int, size: int = 2000) -> bytes:
        cells = [b"\xff" if i % 9 == 0 and i // 9 < n_bad else b"a" for i in range(size - 1)]
        return b"".join(cells) + b"\n"

    assert invalid(200).count(b"\xff") == 200
    with pytest.warns(CorpusWarning, match="200 undecodable"):
        assert read_text(write(tmp_path / "ten.txt", invalid(200)))  # exactly 10%: text
    with pytest.raises(CorpusError, match="looks binary"):
        read_text(write(tmp_path / "more.txt", invalid(201)))
    # below BINARY_MIN_BYTES a file is always read as text: too little to tell a short mis-encoded
    # text (UTF-16 has NUL bytes) from binary data
    short = write(tmp_path / "short.txt", ("hi there\n" * 50).encode("utf-16-le"))
    assert len(short.read_bytes()) < BINARY_MIN_BYTES
    assert read_lines(short)[0] == "h\x00i\x00 \x00t\x00h\x00e\x00r\x00e\x00"
