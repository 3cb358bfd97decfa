"""The tutorial's experiments reproduced (part 4; bidirectional fill vs left-to-right)."""

from rnnlm.experiments.runs import *  # noqa: F403  (split into modules with explicit exports next)
