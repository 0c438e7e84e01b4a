"""Shared widgets: the API client and its error banner, cached calls, the run and image pickers, and what the
pages share: the run, the image and the CAM methods, kept in session state and written into the URL."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import streamlit as st

from frontend import images
from frontend.api import ApiError, PartApi, api_url

IMAGE_SOURCES = ("Probe image", "Dataset sample", "Upload")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]


@st.cache_resource(show_spinner=False)
def _client(url: str, token: str) -> PartApi:
    return PartApi(url, token)


def api() -> PartApi:
    """The shared client for the URL in PART_API_URL (one per URL and token, per server process)."""
    return _client(api_url(), os.environ.get("PART_TOKEN", ""))


def down_banner(err: ApiError) -> None:
    st.error(f"**The PART Studio backend is not available.**\n\n{err.message}\n\n"
             "The dashboard reads the API's address from `PART_API_URL`.", icon=":material/cloud_off:")


def require_backend() -> dict:
    """The health answer, or one banner and a stopped page when the backend is down or wants a token."""
    try:
        health = api().health()
    except ApiError as err:
        down_banner(err)
        st.stop()
    if health.get("auth") and not os.environ.get("PART_TOKEN"):
        st.error(f"**The backend at `{api().base_url}` requires a bearer token.** Start the dashboard with "
                 "`PART_TOKEN` set to the backend's token.", icon=":material/key:")
        st.stop()
    return health


@contextlib.contextmanager
def shown_errors() -> Iterator[None]:
    """Show an API failure in place (a banner when the backend went away) and skip the rest of the block."""
    try:
        yield
    except ApiError as err:
        if err.down:
            down_banner(err)
        else:
            st.error(err.message, icon=":material/warning:")


# -- cached calls: images and grids are deterministic for a given checkpoint and form --
def _key(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, default=str)


@st.cache_data(ttl=900, max_entries=128, show_spinner=False)
def _image_call(url: str, endpoint: str, key: str, upload: tuple[str, bytes] | None) -> dict:
    return getattr(api(), endpoint)(json.loads(key), upload)


def explain(fields: dict[str, Any], upload=None) -> dict:
    return _image_call(api_url(), "explain", _key(fields), upload)


def attack(fields: dict[str, Any], upload=None) -> dict:
    return _image_call(api_url(), "attack", _key(fields), upload)


def compare(fields: dict[str, Any], upload=None) -> dict:
    return _image_call(api_url(), "compare", _key(fields), upload)


def export_npz(fields: dict[str, Any], upload=None) -> bytes:
    """POST /api/export/npz: the shown image's CAMs, eps-maps, masks and both adversarial examples."""
    from frontend.api import SLOW_S, _form_text

    data = {k: _form_text(v) for k, v in fields.items() if v is not None}
    files = {"file": upload} if upload is not None else None
    return api()._request("POST", "/api/export/npz", data=data, files=files, timeout=SLOW_S).content


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def probes(url: str, run_id: str) -> list[dict]:
    return api().probes(run_id)


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def sample(url: str, dataset: str, index: int) -> dict:
    return api().sample(dataset, index)


@st.cache_data(ttl=300, show_spinner=False)
def datasets(url: str) -> list[dict]:
    return api().datasets()


@st.cache_data(ttl=15, show_spinner=False)
def _experiments(url: str) -> dict:
    return api()._json("GET", "/api/experiments")


def experiments() -> dict:
    """GET /api/experiments: which runs are comparable and each PART run's baseline (part.experiments)."""
    return _experiments(api_url())


def baselines() -> dict[str, str]:
    """PART run -> its baseline run, where its experiment has exactly one."""
    return {r: b["run"] for e in experiments()["experiments"] for r, b in e["baselines"].items() if b["run"]}


# -- runs --
def method_label(run: dict) -> str:
    """The paper's name of a run's method (AT, PART, ...), as the backend labels it."""
    return run.get("label") or str(run.get("defense") or "?").upper()


def run_label(run: dict) -> str:
    """'id · PART · 10 ep': the epochs with weights or stored probe CAMs (a shipped run may keep the last weights only)."""
    epochs = set(run.get("epochs") or []) | set(run.get("probe_epochs") or [])
    state = "" if run.get("state") == "completed" else f" · {run.get('state')}"
    return f"{run['id']} · {method_label(run)} · {len(epochs)} ep{state}"


def runs_with_epochs() -> list[dict]:
    """Runs that have at least one checkpoint: PART runs first (plain PART with the paper's recipe ahead of
    PART-T, PART-M and other recipes), then by name."""
    runs = [r for r in api().runs() if r.get("epochs")]
    return sorted(runs, key=lambda r: (not r.get("part"), r.get("defense") != "at", r.get("recipe") != "paper", r["id"]))


def runs_count(health: dict) -> str:
    """'3 runs', and apart the run folders with nothing to open yet (no checkpoint, no probes)."""
    runs, empty = int(health.get("runs") or 0), int(health.get("runs_without_checkpoint") or 0)
    text = f"{runs} run{'' if runs == 1 else 's'}"
    return text + (f" (and {empty} without a checkpoint yet)" if empty else "")


def no_runs_note() -> None:
    st.info("No run has a checkpoint yet. Start one on the **Train** page (a 2-epoch Fashion-MNIST run "
            "takes about a minute on a laptop CPU), or `part train --preset fmnist-part --epochs 2 --burn-in 1 --subset 2000`.",
            icon=":material/science:")


def run_picker(runs: list[dict], *, key: str, label: str = "Run", default: str | None = None) -> dict:
    """A run, opened on the one another page (or the URL's ?run=) chose, else on `default`, else the first; the
    choice is remembered for the other pages."""
    ids = [r["id"] for r in runs]
    start = shared_run(ids) or (default if default in ids else None)
    chosen = st.selectbox(label, ids, index=ids.index(start) if start else 0, key=key,
                          format_func=lambda i: run_label(runs[ids.index(i)]),
                          help="Run folders under the backend's checkpoint root")
    remember_run(chosen)
    return runs[ids.index(chosen)]


# -- what the pages share: one session-state key per concept ("run", "image", "methods") and the URL's
# ?run=ID&probe=K|sample=N&methods=a,b (a page switch clears the URL; each page writes back what it shows) --
def _listed(text: str | None) -> list[str]:
    return [v for v in (text or "").split(",") if v]


def shared_run(ids: list[str]) -> str | None:
    """The run to preselect: the URL's ?run=, else the one chosen on another page; None when neither is in ids."""
    for value in (st.query_params.get("run"), st.session_state.get("run")):
        if value in ids:
            return value
    return None


def remember_run(run_id: str) -> None:
    """Keep the run for the other pages and put it in the URL; another run drops the methods chosen for the last
    (a run opens on its own training mask)."""
    if st.session_state.get("run") not in (None, run_id):
        st.session_state.pop("methods", None)
        st.query_params.pop("methods", None)
    st.session_state["run"] = run_id
    st.query_params["run"] = run_id


def shared_runs(ids: list[str]) -> list[str] | None:
    """The runs of a comparison: the URL's ?runs=a,b, else the ones chosen before; None when none is in ids."""
    for value in (_listed(st.query_params.get("runs")), st.session_state.get("runs") or []):
        known = [r for r in value if r in ids]
        if known:
            return known
    return None


def remember_runs(run_ids: list[str]) -> None:
    st.session_state["runs"] = list(run_ids)
    st.query_params["runs"] = ",".join(run_ids)


def shared_methods(offered: list[str]) -> list[str] | None:
    """The CAM methods chosen before (?methods=a,b; 'ensemble' among them: their ensemble), those offered."""
    for value in (_listed(st.query_params.get("methods")), st.session_state.get("methods") or []):
        known = [m for m in value if m in offered or m == "ensemble"]
        if [m for m in known if m != "ensemble"]:
            return known
    return None


def remember_methods(methods: list[str]) -> None:
    st.session_state["methods"] = list(methods)
    st.query_params["methods"] = ",".join(methods)


def shared_image() -> dict:
    """The image chosen before: {'probe': k}, {'sample': n} (a test index of the run's dataset) or
    {'upload': (name, bytes), 'fit': bool}; the URL's ?probe= or ?sample= first; {} when none."""
    for name in ("probe", "sample"):
        value = st.query_params.get(name)
        if value is not None and value.isdigit():
            return {name: int(value)}
    return dict(st.session_state.get("image") or {})


def remember_image(image: dict) -> None:
    st.session_state["image"] = dict(image)
    for name in ("probe", "sample"):
        if name in image:
            st.query_params[name] = str(image[name])
        else:
            st.query_params.pop(name, None)


# -- images --
@dataclass
class ImageChoice:
    """An image for explain/attack/compare: form fields (probe or index) or an upload."""
    fields: dict[str, Any] = field(default_factory=dict)
    upload: tuple[str, bytes] | None = None
    label: int | None = None
    caption: str = ""


def image_picker(run: dict, *, key: str) -> ImageChoice | None:
    """A probe, a test image or an upload, opened on the image chosen before (shared_image) and remembered."""
    before = shared_image()
    start = "Upload" if "upload" in before else "Dataset sample" if "sample" in before else IMAGE_SOURCES[0]
    source = st.radio("Image", IMAGE_SOURCES, index=IMAGE_SOURCES.index(start), key=f"{key}-source",
                      horizontal=True, help="A fixed probe image of the run, any test image, or your own file")
    if source == "Upload":
        return upload_picker(key, before)
    if source == "Dataset sample":
        dataset = run.get("dataset") or "fashion-mnist"
        size = test_size(dataset)
        last = size - 1 if size else 100_000
        index = st.number_input(f"{dataset} test index", 0, last, min(int(before.get("sample", 0)), last),
                                key=f"{key}-index", help=f"0..{size - 1}: the {size} test images" if size else None)
        remember_image({"sample": int(index)})
        try:
            info = sample(api_url(), dataset, int(index))
        except ApiError as err:
            st.error(err.message, icon=":material/warning:")
            return None
        st.image(images.decode(info["image_png"]), caption=f"#{index}: {info['label_name']}", width=120,
                 output_format="PNG")
        return ImageChoice({"index": int(index), "dataset": dataset, "split": "test"}, label=info["label"],
                           caption=f"{dataset} test #{index} ({info['label_name']})")
    found = probes(api_url(), run["id"])
    if not found:
        st.caption("This run has no probe images.")
        return None
    k = st.selectbox("Probe image", range(len(found)), index=min(int(before.get("probe", 0)), len(found) - 1),
                     key=f"{key}-probe", format_func=lambda k: f"{k}: {found[k]['label_name']} (test #{found[k]['index']})")
    remember_image({"probe": int(k)})
    st.image(images.decode(found[k]["image_png"]), caption=found[k]["label_name"], width=120,
             output_format="PNG")
    return ImageChoice({"probe": int(k)}, label=found[k]["label"],
                       caption=f"probe {k}: test #{found[k]['index']} ({found[k]['label_name']})")


def upload_picker(key: str, before: dict) -> ImageChoice | None:
    """The user's file; the one dropped on another page stays until another replaces it."""
    file = st.file_uploader("Image file", type=UPLOAD_TYPES, key=f"{key}-file",
                            help="Converted to the run's channels and size by the backend")
    fit = st.toggle("Fit to the dataset's style", value=bool(before.get("fit")), key=f"{key}-fit",
                    help="Make a photo look like the training images first (Fashion-MNIST: invert a light "
                         "background, crop to the object, pad to a square, then resize)")
    if file is not None:
        name, data = file.name, file.getvalue()
    elif "upload" in before:
        name, data = before["upload"]
        st.caption(f"Still {name}, dropped before; drop another file to replace it.")
    else:
        st.caption("Drop a PNG/JPEG; until then nothing is explained.")
        return None
    remember_image({"upload": (name, data), "fit": fit})
    thumb, text = images.preview(data)
    if thumb is not None:
        st.image(thumb, caption=f"{name} ({text})", width=120, output_format="PNG")
    else:
        st.caption(f"{name}: {text}; the backend will say what it accepts.")
    return ImageChoice({"fit": True} if fit else {}, upload=(name, data), caption=name)


def test_size(dataset: str) -> int:
    """The number of test images of a dataset this server has (0 when unknown)."""
    for info in datasets(api_url()):
        if info["name"] == dataset:
            return int((info.get("sizes") or {}).get("test") or 0)
    return 0


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"
