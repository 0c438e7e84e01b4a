"""Per-epoch schedules of eps, eps_low, tau and the mask threshold (PART++'s curriculum).

PART++ (the follow-up report of Zhang et al., ICML 2024) anneals the budgets over training instead of
holding them fixed. A schedule is a string of one grammar; every epoch takes its value from it, a pure
function of the epoch, so a resumed run uses the values of a run that never stopped:

    ""  or  constant                  the config's own value every epoch (the default)
    linear:START:END:FROM:TO          START up to epoch FROM, END from epoch TO on, a straight line between
    cosine:START:END:FROM:TO          the same ends, a half cosine between (slow, fast, slow)
    step:START:EPOCH=VALUE[:...]      START, then VALUE from EPOCH on (several EPOCH=VALUE in increasing order)

Values accept fractions ("7/255"); epochs count from 1, like the run's metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

SCHEDULED = ("eps", "eps_low", "tau", "threshold")  # TrainConfig fields with a `<name>_schedule`
GRAMMAR = ("'' or constant; linear:START:END:FROM:TO; cosine:START:END:FROM:TO; "
           "step:START:EPOCH=VALUE[:EPOCH=VALUE...] (values like 0.1 or 7/255, epochs >= 1)")


@dataclass(frozen=True)
class Schedule:
    kind: str  # constant | linear | cosine | step
    start: float = 0.0
    end: float = 0.0
    first: int = 0  # linear/cosine: FROM
    last: int = 0  # linear/cosine: TO
    steps: tuple[tuple[int, float], ...] = ()  # step: (EPOCH, VALUE), increasing epochs

    def value(self, epoch: int, constant: float) -> float:
        """The value at `epoch` (1-based); `constant` is the config's own value, used by 'constant'."""
        if self.kind == "constant":
            return float(constant)
        if self.kind == "step":
            out = self.start
            for at, v in self.steps:
                if epoch >= at:
                    out = v
            return out
        if epoch <= self.first:
            return self.start
        if epoch >= self.last:
            return self.end
        t = (epoch - self.first) / (self.last - self.first)
        if self.kind == "cosine":
            t = (1 - math.cos(math.pi * t)) / 2
        return self.start + (self.end - self.start) * t

    def values(self) -> list[float]:
        """Every value the schedule can take (its range is spanned by them)."""
        return [self.start, self.end] if self.kind in ("linear", "cosine") else [self.start, *(v for _, v in self.steps)]


CONSTANT = Schedule("constant")


def _number(text: str, spec: str) -> float:
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"schedule '{spec}': '{text}' is not a number; accepted: {GRAMMAR}") from None
    if not math.isfinite(value):
        raise ValueError(f"schedule '{spec}': '{text}' is not finite; accepted: {GRAMMAR}")
    return value


def _epoch(text: str, spec: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"schedule '{spec}': epoch '{text}' is not a whole number; accepted: {GRAMMAR}") from None
    if value < 1:
        raise ValueError(f"schedule '{spec}': epoch {value} is before epoch 1; accepted: {GRAMMAR}")
    return value


def parse_schedule(spec: str | None) -> Schedule:
    """The one parser of schedule strings; errors name what was given and the accepted grammar."""
    text = (spec or "").strip().lower()
    if text in ("", "constant"):
        return CONSTANT
    kind, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    if kind in ("linear", "cosine"):
        if len(parts) != 4:
            raise ValueError(f"schedule '{spec}': {kind} takes START:END:FROM:TO (4 values), got {len(parts)}; "
                             f"accepted: {GRAMMAR}")
        first, last = _epoch(parts[2], spec), _epoch(parts[3], spec)
        if last <= first:
            raise ValueError(f"schedule '{spec}': TO ({last}) must come after FROM ({first}); accepted: {GRAMMAR}")
        return Schedule(kind, _number(parts[0], spec), _number(parts[1], spec), first, last)
    if kind == "step":
        if len(parts) < 2:
            raise ValueError(f"schedule '{spec}': step takes START and at least one EPOCH=VALUE; accepted: {GRAMMAR}")
        steps = []
        for item in parts[1:]:
            at, sep, v = item.partition("=")
            if not sep:
                raise ValueError(f"schedule '{spec}': '{item}' is not EPOCH=VALUE; accepted: {GRAMMAR}")
            steps.append((_epoch(at, spec), _number(v, spec)))
        epochs = [at for at, _ in steps]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"schedule '{spec}': the epochs {epochs} must increase; accepted: {GRAMMAR}")
        return Schedule("step", _number(parts[0], spec), steps=tuple(steps))
    raise ValueError(f"schedule '{spec}': unknown kind '{kind}'; accepted: {GRAMMAR}")


MAX_CHECKED_EPOCHS = 100_000


def check_schedules(cfg) -> None:
    """Every scheduled value is a valid value of its field, and eps_low never exceeds eps, at every epoch."""
    parsed = {}
    for name in SCHEDULED:
        spec = getattr(cfg, f"{name}_schedule")
        if not isinstance(spec, str):
            raise ValueError(f"{name}_schedule must be text, got {spec!r}; accepted: {GRAMMAR}")
        try:
            parsed[name] = sched = parse_schedule(spec)
        except ValueError as err:
            raise ValueError(f"{name}_schedule: {err}") from None
        for v in sched.values():
            if v < 0 or (name == "eps" and v > 1):
                accepted = "[0, 1] (a fraction of the pixel range)" if name == "eps" else ">= 0"
                raise ValueError(f"{name}_schedule '{spec}' reaches {name} = {v:g}; accepted: {accepted}")
    if parsed["eps"].kind == parsed["eps_low"].kind == "constant":
        return  # the config's own eps_low <= eps check covers it
    epochs = int(cfg.epochs) if isinstance(cfg.epochs, int) else 0
    for epoch in range(1, min(max(epochs, 1), MAX_CHECKED_EPOCHS) + 1):
        eps, low = parsed["eps"].value(epoch, cfg.eps), parsed["eps_low"].value(epoch, cfg.eps_low)
        if low > eps + 1e-12:
            raise ValueError(f"at epoch {epoch} the schedules give eps_low = {low:g} above eps = {eps:g}; "
                             "eps_low must not exceed eps")


def values_at(cfg, epoch: int) -> dict[str, float]:
    """eps, eps_low, tau and threshold in force at `epoch`."""
    return {name: parse_schedule(getattr(cfg, f"{name}_schedule")).value(epoch, getattr(cfg, name))
            for name in SCHEDULED}


def scheduled(cfg) -> list[str]:
    """The fields whose schedule is not constant (their per-epoch values go into metrics.jsonl)."""
    return [name for name in SCHEDULED if parse_schedule(getattr(cfg, f"{name}_schedule")).kind != "constant"]
