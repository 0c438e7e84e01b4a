"""The HTTP client turns every failure into one ApiError with a message a person can act on; image helpers."""

from __future__ import annotations

import socket

import pytest

from frontend.api import ApiError, PartApi, api_url, start_hint
from frontend.images import decode, preview
from tests.frontend.servers import free_port, shirt_png


def test_url_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PART_API_URL", "http://example.test:9000/")
    monkeypatch.setenv("PART_TOKEN", "s3cret")
    assert api_url() == "http://example.test:9000"
    client = PartApi()
    assert client.base_url == "http://example.test:9000"
    assert client._http.headers["Authorization"] == "Bearer s3cret"


def test_a_closed_port_is_reported_as_down():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiError) as err:
        PartApi(url, "").runs()
    assert err.value.down and url in err.value.message and "part serve" in err.value.message


def test_the_start_hint_names_the_port_and_host_of_the_url_in_use():
    assert start_hint("http://127.0.0.1:8000") == "start it with `make run`, or `part serve --port 8000` in another terminal"
    assert "`PART_PORT=9123 make run`, or `part serve --port 9123` in" in start_hint("http://localhost:9123")
    assert "`part serve --port 80` on backend in" in start_hint("http://backend")


def test_a_silent_server_times_out_as_down():
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(ApiError) as err:
            PartApi(url, "")._request("GET", "/api/runs", timeout=0.5)
    assert err.value.down and "did not answer GET /api/runs within" in err.value.message


def test_errors_carry_the_api_detail(api_url):
    client = PartApi(api_url, "")
    with pytest.raises(ApiError) as err:
        client.run("no-such-run")
    assert err.value.status == 404 and not err.value.down
    assert "no-such-run" in err.value.message and "HTTP 404 from GET /api/runs/no-such-run" in err.value.message
    with pytest.raises(ApiError) as err:
        client.submit_train("fmnist-part", {"eps": 2})
    assert err.value.status == 422 and "eps" in err.value.message


def test_the_client_reads_runs_jobs_and_images(api_url):
    client = PartApi(api_url, "")
    assert {"fmnist-part-tiny", "fmnist-at-tiny"} <= {r["id"] for r in client.runs()}
    result = client.explain({"run": "fmnist-part-tiny", "probe": 1, "methods": ["gradcam", "layercam"],
                             "ensemble": True})
    assert [r["method"] for r in result["results"]] == ["gradcam", "layercam", "ensemble(gradcam+layercam)"]
    assert len(client.probes("fmnist-part-tiny")) == 4


def test_images_previews_and_colours():
    thumb, text = preview(shirt_png(56))
    assert thumb.startswith(b"\x89PNG") and text == "56x56 L"
    assert preview(b"not an image") == (None, "12 bytes that Pillow cannot read as an image")
    with pytest.raises(ValueError, match="PNG data URL"):
        decode("data:image/jpeg;base64,AAAA")
