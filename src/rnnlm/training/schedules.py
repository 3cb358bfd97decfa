"""Learning-rate schedules that fit a training run: what the rate is at each point, and when to stop.

A schedule sees two things: the run's *progress* (a fraction in [0, 1] of its horizon: the time budget,
or the steps of all epochs) before every step, and each *validation* loss. It answers with the learning
rate, and after a validation whether training should go on.

- :class:`WarmupDecay` (Adam and RMSProp by default): linear warm-up over the first ``warmup`` of the
  horizon, then cosine (or linear) decay to ``floor × peak`` at its end -- the whole budget is spent
  learning, and the rate never collapses to zero before the budget ends; a plateau starts an early
  annealing phase (halvings) that ends the run when it brings nothing more.
- :class:`NewBob` (SGD by default): the rule of Mikolov's RNNLM toolkit, and the tutorial's "halve when
  the loss rises" made robust. Keep the rate while validation improves by more than ``min_improvement``
  (relative); from the first evaluation that improves less, halve it at every evaluation; stop when the
  improvement falls below the threshold again.
- :class:`Plateau`: multiply the rate by ``factor`` after every evaluation that does not improve (the
  first rnnlm's rule); :class:`Constant`.

Every schedule stops the run when its rate would fall below ``floor × peak``, so no budget is spent at a
vanishing rate. ``scale`` multiplies the whole curve (NaN recovery halves it). State is a small dict,
saved in checkpoints so a resumed run continues the same curve.
"""

from __future__ import annotations

import math

from rnnlm.errors import ConfigError

SCHEDULES = ("auto", "cosine", "linear", "newbob", "plateau", "constant")


class Schedule:
    """Base: a constant rate ``peak``; subclasses shape it. ``floor`` is a fraction of ``peak``."""

    name = "constant"

    def __init__(self, peak: float, floor: float = 0.05):
        if not peak > 0:
            raise ConfigError(f"learning rate must be positive, got {peak}")
        if not 0 <= floor < 1:
            raise ConfigError(f"learning-rate floor must be in [0, 1) of the peak, got {floor}")
        self.peak, self.floor = float(peak), float(floor)
        self.state = {"scale": 1.0, "best": None}

    def rate(self, progress: float) -> float:
        """The learning rate at ``progress`` in [0, 1] of the horizon."""
        return self.peak * self.state["scale"]

    #: True right after a validation that started the annealing phase (the trainer then returns to the best
    #: parameters seen so far, as Mikolov's RNNLM toolkit does when it starts halving).
    just_annealed = False

    def validated(self, loss: float, progress: float = 0.0) -> str | None:
        """Record a validation loss (at ``progress`` of the horizon); returns a stop reason, or None."""
        best = self.state["best"]
        if best is None or loss < best:
            self.state["best"] = float(loss)
        return None

    def below_floor(self, progress: float) -> bool:
        return self.rate(progress) < self.peak * self.floor * (1 - 1e-9)

    def halve(self) -> None:
        """NaN recovery: halve the whole curve from now on."""
        self.state["scale"] *= 0.5

    def to_json(self) -> dict:
        return {"name": self.name, **self.state}

    def load(self, state: dict) -> None:
        for k in self.state:
            if k in state:
                self.state[k] = state[k]


Constant = Schedule


class WarmupDecay(Schedule):
    """Linear warm-up to ``peak`` over the first ``warmup`` of the horizon, then cosine (``shape='cosine'``)
    or linear decay to ``floor × peak`` at progress 1 (and ``floor × peak`` after it).

    A plateau ends the decay early: after ``patience`` evaluations without a new best (0: never), the
    schedule anneals -- the rate is halved at every evaluation from where it stood (``just_annealed`` tells
    the trainer to go back to the best parameters) -- and the run stops when ``patience`` more evaluations
    bring no new best, or when the rate falls below the floor. A small corpus that overfits long before
    its budget ends thus gets its low-rate phase when it needs it, not at the end of the clock.
    """

    def __init__(
        self, peak: float, floor: float = 0.05, warmup: float = 0.02, shape: str = "cosine", patience: int = 0
    ):
        super().__init__(peak, floor)
        if not 0 <= warmup < 1:
            raise ConfigError(f"warm-up must be a fraction in [0, 1) of the run, got {warmup}")
        if shape not in ("cosine", "linear"):
            raise ConfigError(f"unknown decay shape {shape!r}")
        self.warmup, self.name, self.patience = float(warmup), shape, int(patience)
        self.state.update({"bad": 0, "annealing": False, "anneal_rate": None, "halvings": 0})

    def _curve(self, progress: float) -> float:
        p = min(max(float(progress), 0.0), 1.0)
        low = self.floor * self.peak
        if p < self.warmup:
            return low + (self.peak - low) * p / self.warmup
        q = (p - self.warmup) / (1.0 - self.warmup) if self.warmup < 1 else 1.0
        f = 0.5 * (1.0 + math.cos(math.pi * q)) if self.name == "cosine" else 1.0 - q
        return low + (self.peak - low) * f

    def rate(self, progress: float) -> float:
        r = self._curve(progress)
        st = self.state
        if st["annealing"]:
            r = min(r, st["anneal_rate"] * 0.5 ** st["halvings"])
        return r * st["scale"]

    def validated(self, loss: float, progress: float = 0.0) -> str | None:
        st = self.state
        improved = st["best"] is None or loss < st["best"]
        super().validated(loss, progress)
        st["bad"] = 0 if improved else st["bad"] + 1
        self.just_annealed = False
        if st["annealing"]:
            st["halvings"] += 1
            return "early_stopping" if st["bad"] >= self.patience else None
        if self.patience and st["bad"] >= self.patience:
            st.update(annealing=True, anneal_rate=self._curve(progress), halvings=1, bad=0)
            self.just_annealed = True
        return None

    def below_floor(self, progress: float) -> bool:
        return self.state["annealing"] and super().below_floor(progress)  # the plain decay ends at its floor


class NewBob(Schedule):
    """Mikolov's rule: constant until the relative validation improvement ``(prev − loss) / prev`` drops
    below ``min_improvement``, then halve at every evaluation; stop when it drops below it again."""

    name = "newbob"

    def __init__(self, peak: float, floor: float = 1e-3, min_improvement: float = 0.003):
        super().__init__(peak, floor)
        self.min_improvement = float(min_improvement)
        self.state.update({"prev": None, "halving": False, "halvings": 0})

    def rate(self, progress: float) -> float:
        return self.peak * self.state["scale"] * 0.5 ** self.state["halvings"]

    def validated(self, loss: float, progress: float = 0.0) -> str | None:
        super().validated(loss, progress)
        prev, st = self.state["prev"], self.state
        st["prev"] = float(loss)
        if prev is None:
            return None
        small = (prev - loss) < self.min_improvement * abs(prev)
        if small and st["halving"]:
            return "converged"
        if small:
            st["halving"] = True
        if st["halving"]:
            st["halvings"] += 1
        return None


class Plateau(Schedule):
    """Multiply the rate by ``factor`` after each evaluation that is not the best so far."""

    name = "plateau"

    def __init__(self, peak: float, floor: float = 1e-3, factor: float = 0.5):
        super().__init__(peak, floor)
        if not 0 < factor <= 1:
            raise ConfigError(f"anneal factor must be in (0, 1], got {factor}")
        self.factor = float(factor)
        self.state["cuts"] = 0

    def rate(self, progress: float) -> float:
        return self.peak * self.state["scale"] * self.factor ** self.state["cuts"]

    def validated(self, loss: float, progress: float = 0.0) -> str | None:
        best = self.state["best"]
        if best is not None and not loss < best and self.factor < 1:
            self.state["cuts"] += 1
        return super().validated(loss, progress)


def make_schedule(
    name: str,
    optimizer: str,
    peak: float,
    *,
    floor: float | None = None,
    warmup: float = 0.02,
    min_improvement: float = 0.003,
    anneal: float = 0.5,
    patience: int = 0,
) -> Schedule:
    """The schedule ``name`` (``auto``: newbob for SGD, cosine for Adam and RMSProp); ``patience``: the
    evaluations without a new best after which a decay anneals, then stops (:class:`WarmupDecay`).

    ``floor`` (a fraction of ``peak``) defaults to 0.05 for the decays (their final rate) and 1/1024 for
    newbob and plateau (ten halvings: the rate below which they stop the run).
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if name == "auto":
        name = "newbob" if optimizer == "sgd" else "cosine"
    if name in ("cosine", "linear"):
        return WarmupDecay(peak, 0.05 if floor is None else floor, warmup, name, patience)
    if name == "newbob":
        return NewBob(peak, 2.0**-10 if floor is None else floor, min_improvement)
    if name == "plateau":
        return Plateau(peak, 2.0**-10 if floor is None else floor, anneal)
    return Constant(peak, 0.0 if floor is None else floor)
