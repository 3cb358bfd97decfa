"""Arguments of the experiments and `rnnlm experiment`'s one-line errors."""

import pytest

from rnnlm.data import Corpus
from rnnlm.errors import ConfigError


def test_experiment_arguments_are_validated():
    from rnnlm.experiments import fill_vs_lm, reproduce_part4

    with pytest.raises(ConfigError, match="time budget or a step limit"):
        reproduce_part4(time_budget=None, corpus=Corpus.from_tokens([["a"]] * 3))
    with pytest.raises(ConfigError, match="positive"):
        fill_vs_lm(Corpus.from_tokens([["a"]] * 3), time_budget=-1)


@pytest.mark.parametrize("argv, fragment", [
    (["experiment"], "experiment"),
    (["experiment", "part4", "--time-budget", "soon"], "bad duration"),
    (["experiment", "part4", "--corpus", "no-such-corpus.txt"], "no such file"),
    (["experiment", "fill-vs-lm", "--hidden", "0"], "positive"),
])
def test_cli_errors_are_one_line(cli, capsys, argv, fragment):
    rc = cli(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("rnnlm: error:") and fragment in err
