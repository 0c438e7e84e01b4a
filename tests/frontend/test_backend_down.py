"""With no backend listening, every page shows one banner naming the URL it tried, never a traceback."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.frontend.servers import APP, free_port


@pytest.mark.parametrize("page", [None, "compare", "train", "evaluate", "theory"])
def test_every_page_shows_the_down_banner(page, monkeypatch):
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there
    monkeypatch.setenv("PART_API_URL", url)
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception
    assert len(at.error) == 1
    banner = at.error[0].value
    assert "backend is not available" in banner and url in banner and "make run" in banner
    assert f"PART_PORT={port} make run" in banner and f"part serve --port {port}" in banner  # the URL used, not 8000
    assert "8000" not in banner
    assert not at.title  # the page itself did not run


def test_a_backend_that_does_not_answer_gets_the_banner_too(monkeypatch):
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("PART_API_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception and len(at.error) == 1
    assert "did not answer GET /api/health within 5 s" in at.error[0].value


def test_a_backend_with_a_token_asks_for_it(monkeypatch):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "version": "0", "device": "cpu", "runs": 0, "jobs": {},
                               "auth": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PART_API_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.delenv("PART_TOKEN", raising=False)
        at = AppTest.from_file(str(APP), default_timeout=30).run()
    finally:
        server.shutdown()
    assert not at.exception and len(at.error) == 1
    assert "requires a bearer token" in at.error[0].value and "PART_TOKEN" in at.error[0].value
