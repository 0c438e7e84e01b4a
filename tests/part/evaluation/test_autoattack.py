"""part.evaluation.autoattack: AutoAttack through pyautoattack, its ordering against PGD, and resume after interruption.

Standard AutoAttack costs about a minute for 8 images of a tiny CNN on this CPU, so the fast tests
shrink the sub-attacks through `configure` (APGD-CE keeps its 100 iterations); the standard run is
marked slow.
"""

from __future__ import annotations

import json

import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from part.evaluation.autoattack import SUB_ATTACKS, autoattack
from part.evaluation.evaluate import evaluate
from tests.part.evaluation.eval_fixtures import clean_model, fashion, needs_fashion

pytestmark = needs_fashion
EPS = 0.03


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quick(aa):
    aa.apgd_targeted.n_target_classes, aa.apgd_targeted.n_iter = 2, 10
    aa.fab.n_target_classes, aa.fab.n_iter = 2, 10
    aa.square.n_queries = 50


def test_autoattack_is_at_least_as_strong_as_pgd20():
    x, y = fashion("test", 12)
    model = clean_model()
    pgd = evaluate(model, (x, y), "clean,pgd20", eps=EPS)["attacks"]
    aa = autoattack(model, x, y, eps=EPS, configure=quick)
    assert pgd["clean"]["accuracy"] > aa["accuracy"]
    assert pgd["clean"]["accuracy"] >= pgd["pgd20"]["accuracy"] >= aa["accuracy"]
    # an example AutoAttack counts robust is classified correctly when clean
    assert all(c >= a for c, a in zip(pgd["clean"]["correct"], aa["correct"]))
    subs = aa["sub_attacks"]
    assert list(subs) == ["clean", *SUB_ATTACKS]
    assert subs["clean"] == pytest.approx(pgd["clean"]["accuracy"])
    assert all(a >= b for a, b in zip(list(subs.values()), list(subs.values())[1:]))  # each only removes
    assert aa["params"]["version"] == "custom" and aa["resumed_after"] == []


def test_interrupted_autoattack_resumes_instead_of_recomputing(tmp_path, monkeypatch):
    x, y = fashion("test", 12)
    model, state = clean_model(), tmp_path / "aa_state.json"
    reference = autoattack(model, x, y, eps=EPS, configure=quick)  # one uninterrupted run

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(APGDAttack_targeted, "perturb", interrupt)  # APGD-T: the second sub-attack
    with pytest.raises(KeyboardInterrupt):
        autoattack(model, x, y, eps=EPS, state_path=state, configure=quick)
    saved = json.loads(state.read_text())
    assert saved["done"] == ["apgd-ce"]
    assert sum(saved["robust"]) < len(x)  # APGD-CE's successes are in the state
    monkeypatch.undo()

    calls = {"apgd-ce": 0}
    original = APGDAttack.perturb

    def counted(self, *args, **kwargs):
        calls["apgd-ce"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(APGDAttack, "perturb", counted)
    resumed = autoattack(model, x, y, eps=EPS, state_path=state, configure=quick)
    assert calls["apgd-ce"] == 0
    assert resumed["resumed_after"] == ["apgd-ce"]
    assert resumed["correct"] == reference["correct"]
    assert resumed["sub_attacks"] == pytest.approx(reference["sub_attacks"])
    assert json.loads(state.read_text())["done"] == list(SUB_ATTACKS)


def test_a_state_for_other_images_or_eps_is_not_reused(tmp_path):
    x, y = fashion("test", 6)
    model, state = clean_model(), tmp_path / "aa_state.json"
    autoattack(model, x, y, eps=EPS, state_path=state, configure=quick)
    again = autoattack(model, x, y, eps=EPS, state_path=state, configure=quick)
    assert again["resumed_after"] == list(SUB_ATTACKS)  # finished state: nothing left to run
    other = autoattack(model, x, y, eps=EPS / 2, state_path=state, configure=quick)
    assert other["resumed_after"] == [] and json.loads(state.read_text())["eps"] == EPS / 2


@pytest.mark.slow
def test_standard_autoattack_on_eight_images(tmp_path):
    x, y = fashion("test", 8)
    result = evaluate(clean_model(), (x, y), "clean,pgd20,aa", eps=EPS, state_dir=tmp_path)["attacks"]
    assert result["aa"]["params"]["version"] == "standard"
    assert result["clean"]["accuracy"] >= result["pgd20"]["accuracy"] >= result["aa"]["accuracy"]
    assert (tmp_path / "autoattack_state.json").is_file()
