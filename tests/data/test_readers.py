"""Readers: format detection, the streaming readers and what they repair or refuse."""

from __future__ import annotations

import warnings

import pytest

from rnnlm.data import CorpusWarning, detect_format, prepare, read_lines, read_reddit_csv, read_text
from rnnlm.data.readers import (
    join_blank_lines,
    split_paragraphs,
    stream_lines,
    stream_paragraphs,
    stream_text,
)
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
