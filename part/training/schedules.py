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

import numpy as np

from part.training.config import check_range, parse_number, range_text

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
        """Every value the schedule can take (its range is spanned by them); none of its own for 'constant'."""
        if self.kind == "constant":
            return []
        return [self.start, self.end] if self.kind in ("linear", "cosine") else [self.start, *(v for _, v in self.steps)]


CONSTANT = Schedule("constant")


def _number(text: str, spec: str) -> float:
    """One value of a schedule, read by the config's own number parser (finite, at most 100 characters)."""
    try:
        return float(parse_number(text))
    except ValueError as err:
        raise ValueError(f"schedule '{_short(spec)}': {err}; accepted: {GRAMMAR}") from None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
    """Every scheduled value lies in its field's range (config.RANGES, as the constant fields do), and
    eps_low never exceeds eps at any epoch.

    The cost is that of the schedules, not of the run: the eps_low <= eps check visits each schedule's
    breakpoints (O(steps log steps)); only where both are ramps at once (linear or cosine) is the overlap
    scanned, in one vectorised pass."""
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
            try:
                check_range(name, v)
            except ValueError:
                raise ValueError(f"{name}_schedule '{_short(spec)}' reaches {name} = {v:g}; accepted: "
                                 f"{name} {range_text(name)}, as the config's own {name}") from None
    if parsed["eps"].kind == parsed["eps_low"].kind == "constant":
        return  # the config's own eps_low <= eps check covers it
    epochs = int(cfg.epochs) if isinstance(cfg.epochs, int) else 0
    last = min(max(epochs, 1), MAX_CHECKED_EPOCHS)
    worst = _first_violation(parsed["eps"], float(cfg.eps), parsed["eps_low"], float(cfg.eps_low), last)
    if worst is not None:
        epoch, eps, low = worst
        raise ValueError(f"at epoch {epoch} the schedules give eps_low = {low:g} above eps = {eps:g}; "
                         "eps_low must not exceed eps")


def _breakpoints(s: Schedule, last: int) -> set[int]:
    """Epochs around which `s` changes how it moves: between two consecutive ones (both included) a step
    schedule is constant and a ramp is constant or monotone."""
    if s.kind == "step":
        points = {p for at, _ in s.steps for p in (at - 1, at)}
    elif s.kind in ("linear", "cosine"):
        points = {s.first, s.last}
    else:
        points = set()
    return {p for p in points if 1 <= p <= last}


def _ramps(s: Schedule, lo: int, hi: int) -> bool:
    """Does `s` change anywhere on the epochs lo..hi (consecutive breakpoints)?"""
    return s.kind in ("linear", "cosine") and lo < s.last and hi > s.first


def _first_violation(eps: Schedule, eps_c: float, low: Schedule, low_c: float,
                     last: int) -> tuple[int, float, float] | None:
    """The first epoch in 1..last where low's value exceeds eps's, with both values, or None.

    Between consecutive breakpoints at most one of them moves, or both are ramps. Where one is constant
    the difference is monotone: if it ends above eps and starts below, bisection finds where it crosses.
    Where both ramp, the stretch is scanned (vectorised)."""
    points = sorted(_breakpoints(eps, last) | _breakpoints(low, last) | {1, last})

    def over(epoch: int) -> bool:
        return low.value(epoch, low_c) > eps.value(epoch, eps_c) + 1e-12

    def found(epoch: int) -> tuple[int, float, float]:
        return epoch, eps.value(epoch, eps_c), low.value(epoch, low_c)

    if over(points[0]):
        return found(points[0])
    for lo, hi in zip(points, points[1:]):  # over(lo) is False here
        if hi - lo > 1 and _ramps(eps, lo, hi) and _ramps(low, lo, hi):
            between = np.arange(lo + 1, hi, dtype=np.int64)
            flagged = np.nonzero(_vector(low, between, low_c) > _vector(eps, between, eps_c) + 1e-12)[0]
            for index in flagged:  # confirmed by the scalar value (np.cos and math.cos may differ in the last bit)
                if over(int(between[index])):
                    return found(int(between[index]))
        elif over(hi):  # monotone on lo..hi and crossing: the first epoch above lies in (lo, hi]
            good, bad = lo, hi
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (good, mid) if over(mid) else (mid, bad)
            return found(bad)
        if over(hi):
            return found(hi)
    return None


def _vector(s: Schedule, epochs: np.ndarray, constant: float) -> np.ndarray:
    """Schedule.value at many epochs at once (linear and cosine; the others are not scanned)."""
    t = np.clip((epochs - s.first) / (s.last - s.first), 0.0, 1.0)
    if s.kind == "cosine":
        t = (1 - np.cos(np.pi * t)) / 2
    return s.start + (s.end - s.start) * t


def values_at(cfg, epoch: int) -> dict[str, float]:
    """eps, eps_low, tau and threshold in force at `epoch`."""
    return {name: parse_schedule(getattr(cfg, f"{name}_schedule")).value(epoch, getattr(cfg, name))
            for name in SCHEDULED}


def scheduled(cfg) -> list[str]:
    """The fields whose schedule is not constant (their per-epoch values go into metrics.jsonl)."""
    return [name for name in SCHEDULED if parse_schedule(getattr(cfg, f"{name}_schedule")).kind != "constant"]
