"""part.evaluation.evaluate: attack names, the library call, PGD on a non-robust model, gradient-masking checks."""

from __future__ import annotations

import pytest
import torch

from part.evaluation.checks import gradient_masking_checks
from part.data.datasets import load_dataset
from part.evaluation.evaluate import ACCEPTED, as_tensors, evaluate, parse_attack, parse_attacks
from tests.part.evaluation.eval_fixtures import clean_model, fashion, masked_model, needs_fashion


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_attack_names_are_canonical_and_deduplicated():
    names = [s.name for s in parse_attacks("clean, PGD-20,pgd,natural,mma,MMA20,mma100,pgd10,AutoAttack,aa")]
    assert names == ["clean", "pgd20", "mma", "mma100", "pgd10", "aa"]
    assert (parse_attack("pgd7").kind, parse_attack("pgd7").steps) == ("pgd", 7)
    assert (parse_attack("mma").kind, parse_attack("mma").steps) == ("mma", 20)


@pytest.mark.parametrize("bad", ["pgdx", "pgd0", "cw", "mma0", "square", "pgd-20x"])
def test_unknown_attack_names_list_the_accepted_ones(bad):
    with pytest.raises(ValueError) as err:
        parse_attacks(["clean", bad])
    assert f"unknown attack '{bad}'" in str(err.value) and ACCEPTED in str(err.value)


def test_empty_attack_list_is_an_error():
    with pytest.raises(ValueError, match="no attack given"):
        parse_attacks(" , ")


def test_eps_is_required_for_bare_tensors():
    x, y = torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="eps is required"):
        evaluate(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), (x, y), ["clean"])


@needs_fashion
def test_dataset_gives_the_standard_eps_and_the_first_n_images():
    ds = load_dataset("fashion-mnist", "test", subset=64)
    model = clean_model()
    result = evaluate(model, ds, ["clean"], n=20)
    assert result["eps"] == pytest.approx(0.1) and result["n"] == 20
    x, y = as_tensors(ds)
    assert torch.equal(as_tensors(ds, 20)[0], x[:20])
    rec = result["attacks"]["clean"]
    assert rec["correct"] == (model(x[:20]).argmax(1) == y[:20]).int().tolist()


@needs_fashion
def test_non_robust_model_falls_to_near_zero_under_pgd20():
    x, y = fashion("test", 128)
    result = evaluate(clean_model(), (x, y), "clean,fgsm,pgd20", eps=0.1)
    acc = {k: v["accuracy"] for k, v in result["attacks"].items()}
    assert acc["clean"] >= 0.65
    assert acc["pgd20"] <= 0.08
    assert acc["fgsm"] >= acc["pgd20"]
    pgd = result["attacks"]["pgd20"]
    assert pgd["n"] == 128 and set(pgd["correct"]) <= {0, 1}
    assert pgd["accuracy"] == pytest.approx(sum(pgd["correct"]) / 128)
    assert pgd["params"] == {"eps": 0.1, "steps": 20, "step_size": 0.025, "random_start": True}


@needs_fashion
def test_results_are_seeded_and_leave_the_global_rng_alone():
    x, y = fashion("test", 48)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    runs = [evaluate(clean_model(), (x, y), ["pgd3", "mma5"], eps=0.05) for _ in range(2)]
    assert torch.equal(torch.rand(1), before)
    for name in ("pgd3", "mma5"):
        assert runs[0]["attacks"][name]["correct"] == runs[1]["attacks"][name]["correct"]


@needs_fashion
def test_more_steps_and_mma_do_not_help_the_model():
    x, y = fashion("test", 64)
    result = evaluate(clean_model(), (x, y), "clean,pgd1,pgd10,mma", eps=0.03)
    acc = {k: v["accuracy"] for k, v in result["attacks"].items()}
    assert acc["clean"] > acc["pgd10"] >= acc["mma"] - 0.05
    assert acc["pgd1"] >= acc["pgd10"]


@needs_fashion
def test_an_honest_model_passes_the_gradient_masking_checks():
    x, y = fashion("test", 48)
    result = gradient_masking_checks(clean_model(), x, y, eps=0.1)
    verdicts = {c["id"]: c["passed"] for c in result["checks"]}
    assert verdicts == {"one_step": True, "transfer": None, "unbounded": True, "random_sampling": True,
                        "monotone_eps": True}
    assert result["passed"] is True
    transfer = next(c for c in result["checks"] if c["id"] == "transfer")
    assert transfer["detail"].startswith("skipped") and "--surrogate" in transfer["detail"]
    curve = result["eps_curve"]
    assert curve["eps"] == pytest.approx([0, 0.025, 0.05, 0.1, 0.2, 0.4])
    assert curve["accuracy"][-1] == 0.0 and curve["accuracy"][0] > 0.6


@needs_fashion
def test_masked_gradients_are_flagged():
    x, y = fashion("test", 48)
    result = gradient_masking_checks(masked_model(), x, y, eps=0.1, surrogate=clean_model())
    checks = {c["id"]: c for c in result["checks"]}
    assert result["passed"] is False
    assert checks["unbounded"]["passed"] is False and checks["unbounded"]["numbers"]["accuracy"] > 0.5
    assert checks["transfer"]["passed"] is False
    numbers = checks["transfer"]["numbers"]
    assert numbers["transfer_accuracy"] < numbers["pgd_accuracy"]
