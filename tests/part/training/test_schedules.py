"""Per-epoch schedules of eps, eps_low, tau and threshold: the grammar, the config, the trainer, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import part.training.trainer as train_mod
from part.training.config import TrainConfig, parse_overrides, preset
from part.runs import RunDir
from part.training.schedules import check_schedules, parse_schedule, scheduled, values_at
from part.training.trainer import train
from tests.part.training.test_trainer import TIMING, _stop_at, tiny

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("spec, epochs, expected", [
    ("", [1, 5], [0.07, 0.07]),  # the config's own value
    ("constant", [1, 5], [0.07, 0.07]),
    ("linear:0.1:0.0875:4:9", [1, 4, 5, 9, 12], [0.1, 0.1, 0.1 - 0.0125 / 5, 0.0875, 0.0875]),
    ("cosine:1:0:1:3", [1, 2, 3], [1.0, 0.5, 0.0]),  # half-way through a half cosine is half-way
    ("step:8/255:3=6/255:5=4/255", [1, 2, 3, 4, 5, 9], [8 / 255, 8 / 255, 6 / 255, 6 / 255, 4 / 255, 4 / 255]),
    ("Linear:0.2:0.1:1:2", [1, 2], [0.2, 0.1]),
])
def test_values(spec, epochs, expected):
    assert [parse_schedule(spec).value(e, 0.07) for e in epochs] == pytest.approx(expected)


@pytest.mark.parametrize("spec, says", [
    ("ramp:0:1:1:2", "unknown kind 'ramp'"),
    ("linear:0.1:0.05:4", "4 values), got 3"),
    ("linear:0.1:0.05:5:5", "TO (5) must come after FROM (5)"),
    ("linear:a:0.05:1:5", "'a' is not a number"),
    ("cosine:0.1:0.05:0:5", "epoch 0 is before epoch 1"),
    ("step:0.1", "at least one EPOCH=VALUE"),
    ("step:0.1:3:0.2", "'3' is not EPOCH=VALUE"),
    ("step:0.1:5=0.2:3=0.1", "the epochs [5, 3] must increase"),
    ("linear:nan:0:1:2", "not finite"),
])
def test_errors_name_what_was_given_and_the_grammar(spec, says):
    with pytest.raises(ValueError) as err:
        parse_schedule(spec)
    assert spec in str(err.value) and says in str(err.value) and "linear:START:END:FROM:TO" in str(err.value)


def test_config_checks_every_epoch_and_names_the_field():
    with pytest.raises(ValueError, match="eps_low_schedule: schedule 'cos:1'"):
        preset("fmnist-part", eps_low_schedule="cos:1")
    with pytest.raises(ValueError, match="eps_schedule 'linear:0.1:2:1:3' reaches eps = 2"):
        preset("fmnist-part", eps_schedule="linear:0.1:2:1:3")
    with pytest.raises(ValueError, match="tau_schedule 'step:10:2=-1' reaches tau = -1"):
        preset("fmnist-part", tau_schedule="step:10:2=-1")
    # eps falls below the constant eps_low at epoch 6
    with pytest.raises(ValueError, match="at epoch 6 the schedules give eps_low = 0.0875 above eps = 0.08"):
        preset("fmnist-part", eps_schedule="step:0.1:6=0.08")
    cfg = preset("fmnist-part", eps_schedule="step:0.1:6=0.09", eps_low_schedule="linear:0.0875:0.05:1:10")
    assert values_at(cfg, 6) == pytest.approx({"eps": 0.09, "eps_low": 0.0875 - 0.0375 * 5 / 9, "tau": 10.0,
                                               "threshold": 1.0})
    assert scheduled(cfg) == ["eps", "eps_low"]


def test_old_run_configs_load_and_keep_constant_values():
    """Most shipped runs' configs predate the schedule fields: they load, with every value constant."""
    old = [json.loads(c.read_text()) for c in sorted((ROOT / "checkpoints").glob("*/config.json"))]
    old = [data for data in old if "eps_low_schedule" not in data]
    assert len(old) >= 10
    for data in old:
        cfg = TrainConfig.from_dict(data)
        assert scheduled(cfg) == [] and values_at(cfg, 7)["eps_low"] == data["eps_low"]


def test_a_job_override_reaches_the_config():
    """The jobs API passes `overrides` to preset() as values, and the job's command line as --set KEY=VALUE."""
    overrides = {"eps_low_schedule": "step:0.1:5=0.09", "epochs": 8}
    assert preset("fmnist-part", **overrides).eps_low_schedule == "step:0.1:5=0.09"
    from_cli = parse_overrides([f"{k}={v}" for k, v in overrides.items()])  # '=' inside the value survives
    assert preset("fmnist-part", **from_cli) == preset("fmnist-part", **overrides)


def test_the_trainer_uses_and_records_each_epochs_value(tmp_path, monkeypatch):
    seen = []
    real = train_mod.eps_map
    monkeypatch.setattr(train_mod, "eps_map", lambda *a, **kw: seen.append((kw["eps"], kw["eps_low"])) or real(*a, **kw))
    cfg = tiny(epochs=3, burn_in_epochs=1, eps_low_schedule="linear:0.1:0.05:1:3")
    run = train(cfg, tmp_path / "run")
    rows = run.metrics()
    assert [r["eps_low"] for r in rows] == pytest.approx([0.1, 0.075, 0.05])
    assert "eps" not in rows[0]  # only the scheduled values are recorded
    assert sorted({round(low, 9) for _, low in seen}) == [0.05, 0.075, 0.1]  # epoch 1: the probes' maps
    assert rows[2]["mean_eps_ratio"] < rows[1]["mean_eps_ratio"] < 1  # a smaller eps_low, a smaller mean budget


def test_a_constant_schedule_trains_exactly_like_none(tmp_path):
    a = train(tiny(), tmp_path / "none")
    b = train(tiny(eps_low_schedule="linear:0.0875:0.0875:1:2", tau_schedule="constant"), tmp_path / "flat")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING + ("eps_low",)} for r in rows]
    assert strip(a.metrics()) == strip(b.metrics())


def test_resume_lands_on_the_schedule_value_of_a_run_that_never_stopped(tmp_path, monkeypatch):
    cfg = tiny(epochs=3, eps_schedule="cosine:0.12:0.1:1:3", eps_low_schedule="step:0.1:3=0.06")
    straight = train(cfg, tmp_path / "straight")
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_fit_epoch", _stop_at(2))
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "stopped")
    stopped = RunDir(tmp_path / "stopped")
    assert stopped.epochs() == [1]
    train(None, stopped.path, resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    assert strip(stopped.metrics()) == strip(straight.metrics())
    assert [r["eps"] for r in stopped.metrics()] == pytest.approx([0.12, 0.11, 0.1])
    assert [r["eps_low"] for r in stopped.metrics()] == pytest.approx([0.1, 0.1, 0.06])


# -- issue 23: one parser, one range table, a check that costs what the schedules are worth ---------

HUGE = "1" + "0" * 400 + "/7"


@pytest.mark.parametrize("field", ["eps_schedule", "eps_low_schedule", "tau_schedule", "threshold_schedule"])
def test_an_overflowing_fraction_in_a_schedule_is_a_value_error(field):
    with pytest.raises(ValueError, match=f"{field}: .*has 403 characters"):
        preset("fmnist-part", **{field: f"step:0.01:2={HUGE}"})
    with pytest.raises(ValueError, match=f"{field}: .*not a number"):
        preset("fmnist-part", **{field: "step:0.01:2=" + "9" * 80 + "/0"})


@pytest.mark.parametrize("field, spec, words", [
    ("tau", "step:5:2=1e300", "reaches tau = 1e+300"), ("tau", "step:5:2=0", "reaches tau = 0"),
    ("threshold", "cosine:1:2e6:1:3", "reaches threshold = 2e+06"), ("eps_low", "linear:0:1.5:1:2", "reaches eps_low = 1.5"),
])
def test_a_schedule_is_bounded_by_its_fields_range(field, spec, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        preset("fmnist-part", **{f"{field}_schedule": spec})
    with pytest.raises(ValueError, match=field):  # as the field itself is
        preset("fmnist-part", **{field: float(words.rsplit("= ", 1)[1])})


def _brute_force(cfg) -> int | None:
    """The first epoch where eps_low exceeds eps, visiting every epoch (the check before issue 23)."""
    eps, low = parse_schedule(cfg.eps_schedule), parse_schedule(cfg.eps_low_schedule)
    for epoch in range(1, cfg.epochs + 1):
        if low.value(epoch, cfg.eps_low) > eps.value(epoch, cfg.eps) + 1e-12:
            return epoch
    return None


def _spec(draw, st) -> str:
    kind = draw(st.sampled_from(["", "linear", "cosine", "step"]))
    value = st.sampled_from([0.0, 0.02, 0.05, 0.0875, 0.1, 0.12, 0.2])
    if kind in ("linear", "cosine"):
        first = draw(st.integers(1, 40))
        return f"{kind}:{draw(value)}:{draw(value)}:{first}:{first + draw(st.integers(1, 40))}"
    if kind == "step":
        epochs = sorted(draw(st.sets(st.integers(1, 80), min_size=1, max_size=6)))
        return f"step:{draw(value)}:" + ":".join(f"{e}={draw(value)}" for e in epochs)
    return kind


def test_the_breakpoint_check_finds_what_visiting_every_epoch_finds():
    from hypothesis import given, settings, strategies as st

    @st.composite
    def configs(draw):
        return dict(eps_schedule=_spec(draw, st), eps_low_schedule=_spec(draw, st), epochs=draw(st.integers(1, 90)),
                    eps=draw(st.sampled_from([0.05, 0.1])), eps_low=draw(st.sampled_from([0.02, 0.05])))

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(configs())
    def check(fields):
        cfg = TrainConfig(**fields)
        expected = _brute_force(cfg)
        try:
            check_schedules(cfg)
            found = None
        except ValueError as err:
            found = int(str(err).split("at epoch ", 1)[1].split()[0])
        assert found == expected, (fields, found, expected)

    check()


def test_the_check_visits_breakpoints_not_epochs(monkeypatch):
    from part.training import schedules

    calls = {"n": 0}
    value = schedules.Schedule.value

    def counted(self, epoch, constant):
        calls["n"] += 1
        return value(self, epoch, constant)

    monkeypatch.setattr(schedules.Schedule, "value", counted)
    eps = "step:0.1:" + ":".join(f"{e}=0.1" for e in range(2, 462))
    low = "step:0.05:" + ":".join(f"{e}=0.05" for e in range(2, 462))
    preset("fmnist-part", epochs=100_000, eps_schedule=eps, eps_low_schedule=low)  # valid: no epoch breaks it
    assert calls["n"] < 5_000  # every epoch would be 200,000 calls, each scanning 460 steps
    calls["n"] = 0
    ramps = dict(eps_schedule="cosine:0.1:0.05:1:100000", eps_low_schedule="linear:0.05:0.06:1:100000")
    with pytest.raises(ValueError, match="at epoch"):  # two ramps: scanned, vectorised, then confirmed
        preset("fmnist-part", epochs=100_000, **ramps)
    assert calls["n"] < 100
