"""The tutorial's part 3 measured: BPTT and vanishing/exploding gradients (NumPy, no engine)."""

from rnnlm.analysis.bptt import *  # noqa: F403  (split into modules with explicit exports next)
