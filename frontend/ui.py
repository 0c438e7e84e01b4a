"""Shared widgets: the API client and its error banner, cached calls, the run and image pickers."""

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


def run_picker(runs: list[dict], *, key: str, label: str = "Run") -> dict:
    ids = [r["id"] for r in runs]
    chosen = st.selectbox(label, ids, key=key, format_func=lambda i: run_label(runs[ids.index(i)]),
                          help="Run folders under the backend's checkpoint root")
    return runs[ids.index(chosen)]


# -- images --
@dataclass
class ImageChoice:
    """An image for explain/attack/compare: form fields (probe or index) or an upload."""
    fields: dict[str, Any] = field(default_factory=dict)
    upload: tuple[str, bytes] | None = None
    label: int | None = None
    caption: str = ""


def image_picker(run: dict, *, key: str, default: str = IMAGE_SOURCES[0]) -> ImageChoice | None:
    source = st.radio("Image", IMAGE_SOURCES, index=IMAGE_SOURCES.index(default), key=f"{key}-source",
                      horizontal=True, help="A fixed probe image of the run, any test image, or your own file")
    if source == "Upload":
        file = st.file_uploader("Image file", type=UPLOAD_TYPES, key=f"{key}-file",
                                help="Converted to the run's channels and size by the backend")
        fit = st.toggle("Fit to the dataset's style", key=f"{key}-fit",
                        help="Make a photo look like the training images first (Fashion-MNIST: invert a light "
                             "background, crop to the object, pad to a square, then resize)")
        if file is None:
            st.caption("Drop a PNG/JPEG; until then nothing is explained.")
            return None
        data = file.getvalue()
        thumb, text = images.preview(data)
        if thumb is not None:
            st.image(thumb, caption=f"{file.name} ({text})", width=120, output_format="PNG")
        else:
            st.caption(f"{file.name}: {text}; the backend will say what it accepts.")
        return ImageChoice({"fit": True} if fit else {}, upload=(file.name, data), caption=file.name)
    if source == "Dataset sample":
        dataset = run.get("dataset") or "fashion-mnist"
        size = test_size(dataset)
        index = st.number_input(f"{dataset} test index", 0, size - 1 if size else 100_000, 0, key=f"{key}-index",
                                help=f"0..{size - 1}: the {size} test images" if size else None)
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
    k = st.selectbox("Probe image", range(len(found)), key=f"{key}-probe",
                     format_func=lambda k: f"{k}: {found[k]['label_name']} (test #{found[k]['index']})")
    st.image(images.decode(found[k]["image_png"]), caption=found[k]["label_name"], width=120,
             output_format="PNG")
    return ImageChoice({"probe": int(k)}, label=found[k]["label"],
                       caption=f"probe {k}: test #{found[k]['index']} ({found[k]['label_name']})")


def test_size(dataset: str) -> int:
    """The number of test images of a dataset this server has (0 when unknown)."""
    for info in datasets(api_url()):
        if info["name"] == dataset:
            return int((info.get("sizes") or {}).get("test") or 0)
    return 0


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"
