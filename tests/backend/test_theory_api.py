"""GET /api/theory serves part.theory's two-pixel model with its bounds."""

import pytest

from part.theory import two_pixel


def test_theory_answers_the_model_of_section_3_3(client):
    params = dict(x1=0.5, x2=0.5, w1=2.0, w2=0.5, b=0.0, y=1.0, eps1=0.1, eps2=0.05)
    body = client.get("/api/theory", params=params).json()
    assert body["optimal"] == two_pixel(**params)["optimal"]
    # r = 1 - 1.25 = -0.25: the attack pushes both pixels with the weights' signs, loss (0.25 + 0.2 + 0.025)^2
    assert body["optimal"]["delta1"] == pytest.approx(0.1) and body["optimal"]["loss"] == pytest.approx(0.475 ** 2)


@pytest.mark.parametrize("params, field", [({"eps1": 2}, "eps1"), ({"w2": "nan"}, "w2"), ({"grid": 10_000}, "grid"),
                                           ({"x1": "1e400"}, "x1")])
def test_theory_refuses_values_outside_its_bounds(client, params, field):
    r = client.get("/api/theory", params=params)
    assert r.status_code == 422 and field in r.json()["detail"]
