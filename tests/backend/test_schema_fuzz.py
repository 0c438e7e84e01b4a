"""Schemathesis against the OpenAPI schema: generated requests to every operation, and no 5xx.

Driven through hypothesis directly (schemathesis' pytest plugin does not run under pytest 9).
Jobs POSTed here stay queued: the app runs without its supervisor, so no process starts.
"""

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from backend.app import create_app
from backend.settings import load_settings

EXAMPLES = 12


@pytest.fixture(scope="module")
def operations(run_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "checkpoints"
    shutil.copytree(run_root, root)
    app = create_app(load_settings(env={}, checkpoints=root), start_jobs=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}


def test_every_operation_is_fuzzed(operations):
    assert {"POST /api/explain", "POST /api/attack", "POST /api/compare", "POST /api/jobs",
            "GET /api/jobs/{job_id}/events", "DELETE /api/jobs/{job_id}"} <= set(operations)
    assert len(operations) >= 20


def test_no_request_gets_a_server_error(operations):
    failures = []
    for name, operation in operations.items():
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(checks=[not_a_server_error])

        try:
            check()
        except Exception as err:  # collect every operation's failure, not only the first
            failures.append(f"{name}: {str(err)[:400]}")
    assert not failures, "\n".join(failures)


# Generated forms reach past validation only with real run ids: draw them, and everything else, here.
_fraction = st.sampled_from(["0.1", "8/255", "0", "1", "-1", "2", "nan", "inf", "1/0", "abc", " "])
_float = st.floats(allow_nan=False, allow_infinity=False, width=32).map(str) | st.sampled_from(["nan", "inf", "x"])
_form = st.fixed_dictionaries({"run": st.sampled_from(["part-tiny", "at-tiny"])}, optional={
    "epoch": st.sampled_from(["0", "1", "2", "3", "-1", "x"]),
    "methods": st.sampled_from(["gradcam", "layercam,gradcam++", "ensemble", "eigencam", "gradcam,,x", ""]),
    "ensemble": st.sampled_from(["true", "false", "maybe"]),
    "weights": st.sampled_from(["1,1", "0,0", "-1,2", "1", "a,b"]),
    "target": st.sampled_from(["pred", "label", "0", "9", "10", "-1", "x"]),
    "recipe": st.sampled_from(["paper", "reference", "soft", "soft-partpp", "quadrant", "shuffled", "uniform-mean", "x"]),
    "eps": _fraction, "eps_low": _fraction, "threshold": _float, "tau": _float,
    "quadrant": st.sampled_from(["ul", "br", "zz"]),
    "probe": st.sampled_from(["0", "3", "4", "-1"]), "index": st.sampled_from(["0", "9999", "10000", "x"]),
    "dataset": st.sampled_from(["fashion-mnist", "cifar10", "nope"]), "split": st.sampled_from(["test", "train", "x"]),
    "attack": st.sampled_from(["pgd", "mma", "x"]), "budget": st.sampled_from(["eps-map", "scalar", "x"]),
    "steps": st.sampled_from(["1", "2", "0", "999"]), "step_size": _fraction,
    "random_start": st.sampled_from(["true", "false"]),
    "runs": st.sampled_from(["part-tiny,at-tiny", "at-tiny", "", "x,..", "part-tiny,part-tiny"]),
    "epochs": st.sampled_from(["1,2", "all", "", "5", "a", "-3"]), "method": st.sampled_from(["layercam", "x"]),
})
_file = st.none() | st.binary(max_size=64) | st.sampled_from([b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"])


@pytest.mark.parametrize("path", ["/api/explain", "/api/attack", "/api/compare"])
def test_generated_forms_on_real_runs_get_no_server_error(client, path):
    @given(form=_form, file=_file)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(form, file):
        files = {"file": ("x.png", file)} if file is not None else None
        r = client.post(path, data=form, files=files)
        assert r.status_code < 500, (form, r.text[:300])
        assert r.status_code == 200 or r.json()["detail"]

    check()
