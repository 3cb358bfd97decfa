"""``rnnlm data download | prepare | info``: known data files and prepared corpora."""

from __future__ import annotations

from pathlib import Path

from rnnlm.cli.common import (
    add_corpus_arguments,
    add_subcommands,
    corpus_options,
    print_corpus_stats,
    print_json,
)
from rnnlm.errors import UsageError


def add_parser(subparsers):
    from rnnlm.data.datasets import KNOWN

    p = subparsers.add_parser(
        "data",
        help="download, prepare and inspect corpora",
        description="Download known data files, prepare corpora into .npz files, inspect them.",
    )
    sub = add_subcommands(p, "data_command", ("download", "prepare", "info"))

    d = sub.add_parser(
        "download",
        help="download a known data file into data/ (verified)",
        description="Download a known data file from its original public URL, verify it "
        "(sha256, or by parsing for the reddit CSV) and move it into place. "
        "RNNLM_DATA=DIR makes every command look in DIR first.",
    )
    d.add_argument(
        "name", choices=list(KNOWN), help="; ".join(f"{k}: {v.description}" for k, v in KNOWN.items())
    )
    d.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    d.add_argument("--dest", default=None, metavar="DIR", help="folder to download into (default: data/)")
    d.set_defaults(run=run_download)

    pr = sub.add_parser(
        "prepare",
        help="read, tokenize and encode a corpus into an .npz file (or a memory-mapped .json corpus)",
        description="Prepare a corpus (a file or a known name such as reddit or "
        "tinyshakespeare): the tutorial's preprocessing, printed with its statistics. An --out name "
        "ending in .json writes the memory-mapped format: NAME.json (vocabulary and statistics) beside "
        "NAME.ids.npy (token ids, uint16 or uint32) and NAME.offsets.npy, which `rnnlm train NAME.json` "
        "reads from a memory map, never whole; any other name, one compressed .npz file.",
    )
    pr.add_argument("source", help="corpus file or known corpus name (reddit, tinyshakespeare)")
    pr.add_argument(
        "--out",
        required=True,
        metavar="FILE.npz|FILE.json",
        help="where to write the prepared corpus (.json: memory-mapped, for corpora past RAM)",
    )
    add_corpus_arguments(pr)
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    pr.set_defaults(run=run_prepare)

    i = sub.add_parser(
        "info",
        help="show the statistics of a prepared corpus",
        description="Show the statistics and vocabulary head of a prepared corpus (.npz or .json).",
    )
    i.add_argument("file", metavar="FILE.npz|FILE.json")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    i.set_defaults(run=run_info)
    return p


def run_download(args) -> int:
    from rnnlm.data import datasets

    print(datasets.download(args.name, dest=args.dest, force=args.force))
    return 0


def _check_out_path(out: str) -> None:
    p = Path(out)
    if p.is_dir():
        raise UsageError(f"--out {out}: is a directory; give a file name such as corpus.npz")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {out}: folder {parent} does not exist")


def run_prepare(args) -> int:
    from rnnlm.data import prepare

    _check_out_path(args.out)
    corpus = prepare(args.source, progress=not args.json, **corpus_options(args))
    path = corpus.save(args.out)
    if args.json:
        print_json({**corpus.stats, "out": str(path)})
    else:
        print_corpus_stats(corpus.stats)
        print(f"Saved {len(corpus)} sentences to {path}")
    return 0


def run_info(args) -> int:
    from rnnlm.data import Corpus

    corpus = Corpus.load(args.file)
    head = corpus.vocab.index_to_word[:20]
    if args.json:
        print_json({**corpus.stats, "file": args.file, "vocab_head": head})
        return 0
    print_corpus_stats(corpus.stats)
    print(f"  vocabulary head: {' '.join(repr(w) for w in head)}")
    return 0
