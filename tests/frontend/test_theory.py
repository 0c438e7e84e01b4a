"""Theory page: Section 3.3's two-pixel model drawn from the API's numbers. A stub server answers
GET /api/theory with part.theory (what the backend's route returns), so the page is tested through its
real HTTP client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

import pytest
from streamlit.testing.v1 import AppTest

from part.theory import two_pixel
from tests.frontend.servers import APP


class TheoryApi(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/api/health":
            status, body = 200, {"status": "ok", "version": "0", "device": "cpu", "runs": 0, "jobs": {}, "auth": False}
        elif url.path == "/api/theory":
            try:
                status, body = 200, two_pixel(**{k: float(v) for k, v in parse_qsl(url.query)})
            except ValueError as err:
                status, body = 422, {"detail": str(err)}
        else:
            status, body = 404, {"detail": "Not Found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def theory_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TheoryApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(theory_url, monkeypatch):
    monkeypatch.setenv("PART_API_URL", theory_url)
    monkeypatch.delenv("PART_TOKEN", raising=False)
    return AppTest.from_file(str(APP), default_timeout=60).run().switch_page("views/theory.py").run()


def figures(at: AppTest) -> dict[str, dict]:
    return {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_defaults_draw_the_optimum_and_the_tradeoff(page):
    assert not page.exception, [e.value for e in page.exception]
    expected = two_pixel(x1=0.5, x2=0.5, w1=2.0, w2=0.5, b=0.0, y=1.0, eps1=8 / 255, eps2=8 / 255)
    assert metric(page, "loss under attack") == f"{expected['optimal']['loss']:.4f}"
    assert metric(page, "optimal perturbation Delta*") == "(+8, +8)/255"
    assert metric(page, "d loss / d eps1 : d loss / d eps2") == "4.00 : 1"  # |w1| : |w2| = 2 : 0.5
    figs = figures(page)
    star = next(t for t in figs["th-landscape"]["data"] if t.get("name", "").startswith("optimal"))
    assert star["x"] == pytest.approx([8.0]) and star["y"] == pytest.approx([8.0])
    curves = {t["name"].split(" ")[1]: t["y"] for t in figs["th-tradeoff"]["data"]}
    assert curves["eps1"] == pytest.approx(expected["tradeoff"]["lower_eps1"])
    assert curves["eps2"] == pytest.approx(expected["tradeoff"]["lower_eps2"])
    # lowering the unimportant pixel's budget costs the attack less than lowering the important one's
    assert curves["eps2"][0] > curves["eps1"][0]
    text = " ".join(m.value for m in page.markdown)
    assert "What the section concludes" in text and f"{expected['optimal']['loss']:.4f}" in text


def test_moving_a_budget_and_a_weight_redraws(page):
    page.slider(key="th-eps2").set_value(0.0).run()
    page.slider(key="th-w1").set_value(-1.0).run()
    assert not page.exception
    expected = two_pixel(x1=0.5, x2=0.5, w1=-1.0, w2=0.5, b=0.0, y=1.0, eps1=8 / 255, eps2=0.0)
    # f(x) = -0.25, r = 1.25 > 0 and w1 < 0: the attack raises x1 to lower f: d1* = +8/255, d2* = 0
    assert expected["optimal"]["delta1"] == pytest.approx(8 / 255)
    assert metric(page, "loss under attack") == f"{expected['optimal']['loss']:.4f}"
    star = next(t for t in figures(page)["th-landscape"]["data"] if t.get("name", "").startswith("optimal"))
    assert star["x"] == pytest.approx([8.0]) and star["y"] == pytest.approx([0.0])


def test_the_page_is_in_the_navigation():
    assert 'st.Page("views/theory.py", title="Theory"' in APP.read_text()
