"""The bearer token guards every route but health; errors are JSON and say what is accepted."""

import pytest

from tests.backend.conftest import make_client


@pytest.fixture(scope="module")
def guarded(run_root):
    with make_client(run_root, token="s3cret") as c:
        yield c


def test_health_is_open_and_everything_else_needs_the_token(guarded):
    assert guarded.get("/api/health").json()["auth"] is True
    for method, path in (("GET", "/api/runs"), ("GET", "/api/datasets"), ("GET", "/api/jobs"),
                         ("POST", "/api/explain"), ("POST", "/api/jobs"), ("GET", "/api/runs/part-tiny")):
        r = guarded.request(method, path)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"], (method, path)
    wrong = guarded.get("/api/runs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "is wrong" in wrong.json()["detail"]
    right = guarded.get("/api/runs", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200 and len(right.json()) == 2


def test_the_docs_need_the_token_too(guarded, client):
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert guarded.get(path).status_code == 401, path
        assert guarded.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
        assert client.get(path).status_code == 200, path  # no token set: this machine may read them


def test_the_schema_declares_the_bearer_scheme_only_with_a_token(guarded, client):
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})
    schema = guarded.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
    assert {"/api/health", "/api/runs", "/api/explain", "/api/attack", "/api/compare", "/api/jobs",
            "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/resume"} <= set(schema["paths"])


def test_unknown_routes_and_methods_answer_json(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "/docs" in r.json()["detail"]
    r = client.put("/api/runs")
    assert r.status_code == 405 and "PUT is not accepted" in r.json()["detail"]
    r = client.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]
