"""Tests for part.training.defenses: AT, TRADES and MART losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from part.training.defenses import DEFENSES, at_loss, get_defense, mart_loss, trades_loss

NAT = [[2.0, 1.0, 0.1],
       [0.5, 2.5, -1.0],
       [0.3, -0.2, 1.1]]
ADV = [[1.4, 1.2, 0.3],   # y = 0 is still on top: the runner-up is class 1
       [1.5, 0.2, 0.4],   # y = 1 lost to class 0; class 2 is second but the runner-up is class 0
       [0.1, 0.9, 1.7]]   # y = 0 is last: the runner-up is class 2
Y = [0, 1, 0]
RUNNER_UP = [1, 0, 2]


def softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def ce(row, y):
    return -math.log(softmax(row)[y])


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def mean(values):
    return sum(values) / len(values)


def tensors():
    return torch.tensor(NAT, dtype=torch.float64), torch.tensor(ADV, dtype=torch.float64), torch.tensor(Y)


def test_at_is_mean_cross_entropy_on_adversarial_logits():
    nat, adv, y = tensors()
    expected = mean([ce(a, t) for a, t in zip(ADV, Y)])
    assert float(at_loss(nat, adv, y, 6.0)) == pytest.approx(expected, rel=1e-10)
    assert float(at_loss(None, adv, y, 0.0)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_by_hand(beta):
    nat, adv, y = tensors()
    natural = mean([ce(n, t) for n, t in zip(NAT, Y)])
    robust = mean([kl(softmax(n), softmax(a)) for n, a in zip(NAT, ADV)])
    assert float(trades_loss(nat, adv, y, beta)) == pytest.approx(natural + beta * robust, rel=1e-10)


def test_trades_robust_term_vanishes_when_adv_equals_nat():
    nat, _, y = tensors()
    assert float(trades_loss(nat, nat.clone(), y, 6.0)) == pytest.approx(mean([ce(n, t) for n, t in zip(NAT, Y)]))


def _mart_by_hand(beta):
    adv_ce = mean([ce(a, t) for a, t in zip(ADV, Y)])
    boost = mean([-math.log(1.0001 - softmax(a)[r] + 1e-12) for a, r in zip(ADV, RUNNER_UP)])
    robust = mean([kl(softmax(n), softmax(a)) * (1.0000001 - softmax(n)[t]) for n, a, t in zip(NAT, ADV, Y)])
    return adv_ce + boost + beta * robust


def test_runner_up_classes_by_hand():
    for a, t, r in zip(ADV, Y, RUNNER_UP):
        p = softmax(a)
        assert r == max((c for c in range(3) if c != t), key=lambda c: p[c])


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_mart_by_hand(beta):
    nat, adv, y = tensors()
    assert float(mart_loss(nat, adv, y, beta)) == pytest.approx(_mart_by_hand(beta), rel=1e-9)


def test_mart_in_float32_and_gradients_flow():
    nat = torch.tensor(NAT, requires_grad=True)
    adv = torch.tensor(ADV, requires_grad=True)
    loss = mart_loss(nat, adv, torch.tensor(Y), 6.0)
    assert loss.item() == pytest.approx(_mart_by_hand(6.0), rel=1e-5)
    loss.backward()
    assert nat.grad is not None and adv.grad is not None
    assert float(nat.grad.abs().sum()) > 0 and float(adv.grad.abs().sum()) > 0


def test_registry():
    assert set(DEFENSES) == {"at", "trades", "mart"}
    at, trades, mart = get_defense("at"), get_defense("trades"), get_defense("mart")
    assert (at.attack_loss, trades.attack_loss, mart.attack_loss) == ("ce", "kl", "ce")
    assert (at.needs_clean_logits, trades.needs_clean_logits, mart.needs_clean_logits) == (False, True, True)
    assert at.loss is at_loss and trades.loss is trades_loss and mart.loss is mart_loss
    assert all(get_defense(n).name == n for n in DEFENSES)


def test_unknown_defense_lists_accepted():
    with pytest.raises(ValueError, match="unknown defense 'pgd'; accepted: at, trades, mart"):
        get_defense("pgd")
