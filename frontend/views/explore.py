"""Explore: one image through one checkpoint: CAM overlays, the ensemble, the eps-map, the mask, an attack."""

from __future__ import annotations

import json

import streamlit as st

from frontend import charts, images, ui
from frontend.attack_view import attack_tab
from frontend.choices import CAM_METHODS, RECIPE_HELP, RECIPES, as_255, eps_text, method_label

DEFAULT_METHODS = ["gradcam", "layercam"]


def cam_settings(run: dict, config: dict) -> dict:
    """Sidebar controls -> the explain form's fields (without the image)."""
    rid = run["id"]
    epoch = st.select_slider("Epoch", run["epochs"], value=run["epochs"][-1], key=f"ex-epoch-{rid}",
                             help="Checkpoint to explain; burn-in epochs are plain AT")
    own = list(config.get("cam_methods") or ["gradcam"])
    methods = st.multiselect("CAM methods", CAM_METHODS, default=list(dict.fromkeys(own + DEFAULT_METHODS)),
                             key=f"ex-methods-{rid}", help=f"The run trained with {', '.join(own)}")
    ensemble = st.toggle("Ensemble of the methods", value=len(methods) > 1, key=f"ex-ens-{rid}",
                         disabled=len(methods) < 2, help="Equal-weight average of the normalised CAMs")
    target = st.radio("Explain the class", ["label", "pred"], horizontal=True, key="ex-target",
                      format_func={"label": "true label", "pred": "prediction"}.get,
                      help="Probes and dataset samples have a label; an upload always explains the prediction")
    st.divider()
    recipes = list(RECIPES)
    recipe = st.selectbox("Mask recipe", recipes, index=recipes.index(config.get("recipe", "paper")),
                          key=f"ex-recipe-{rid}", format_func=lambda r: f"{r}: {RECIPE_HELP[r]}")
    c1, c2 = st.columns(2)
    eps = c1.text_input("eps", eps_text(config.get("eps", 0.1)), key=f"ex-eps-{rid}", help="full budget: 0.1 or 8/255")
    eps_low = c2.text_input("eps_low", eps_text(config.get("eps_low", 0.0875)), key=f"ex-epslow-{rid}",
                            help="budget of unimportant pixels")
    fields = {"run": rid, "epoch": epoch, "methods": ",".join(methods), "ensemble": ensemble and len(methods) > 1,
              "target": target, "recipe": recipe, "eps": eps.strip(), "eps_low": eps_low.strip()}
    options = RECIPES[recipe]
    if "threshold" in options:
        fields["threshold"] = st.slider("threshold (w = cam / mean cam)", 0.0, 3.0,
                                        float(config.get("threshold", 1.0)), 0.05, key=f"ex-thr-{rid}")
    if "tau" in options:
        fields["tau"] = st.slider("tau (sigmoid sharpness)", 0.5, 50.0, float(config.get("tau", 10.0)), 0.5,
                                  key=f"ex-tau-{rid}")
    if "quadrant" in options:
        fields["quadrant"] = st.radio("quadrant", ["ul", "ur", "bl", "br"], horizontal=True, key=f"ex-q-{rid}",
                                      index=["ul", "ur", "bl", "br"].index(config.get("quadrant", "br")))
    return fields


def headline(result: dict, chosen: dict) -> None:
    pred, inp = result["prediction"], result["input"]
    cols = st.columns(5)
    cols[0].metric("Prediction", pred["class_name"], f"{100 * pred['confidence']:.1f}% confident", delta_color="off",
                   delta_arrow="off")
    right = inp.get("label") == pred["class_index"]
    cols[1].metric("True label", inp.get("label_name") or "unknown",
                   None if inp.get("label") is None else ("correct" if right else "wrong"),
                   delta_color="normal" if right else "inverse")
    cols[2].metric("Full-eps fraction", ui.percent(chosen["mask_stats"]["full_eps_fraction"]),
                   help="Share of pixels whose budget is the full eps (the rest get eps_low)")
    cols[3].metric("Mean budget (of eps)", f"{100 * chosen['mask_stats']['mean_eps_ratio']:.1f}%",
                   help="Average per-pixel budget relative to eps")
    cols[4].metric("eps / eps_low (/255)", f"{255 * result['eps']:.3g} / {255 * result['eps_low']:.3g}",
                   help=f"eps {as_255(result['eps'])}, eps_low {as_255(result['eps_low'])}; recipe "
                        f"{result['recipe']} {result['options'] or ''}")


def overlays(result: dict) -> None:
    items = [("Original", images.decode(result["input"]["image_png"]))]
    items += [(f"{r['method']} · {ui.percent(r['mask_stats']['full_eps_fraction'])} at eps",
               images.decode(r["overlay_png"])) for r in result["results"]]
    for col, (caption, data) in zip(st.columns(len(items)), items):
        col.image(data, caption=caption, width="stretch", output_format="PNG")
    st.image(images.jet_bar(), width="stretch", output_format="PNG")
    st.caption("CAM importance, jet colour scale: 0 (blue) → 1 (red), min-max normalised per map. "
               "Pixels the model relies on for its class get the full budget eps.")


def heatmaps_tab(result: dict, source: str, classes: list[str]) -> None:
    overlays(result)
    by_method = {r["method"]: r for r in result["results"]}
    chosen = by_method[source]
    c1, c2, c3 = st.columns([1, 1, 1.2])
    c1.plotly_chart(charts.eps_map(chosen["eps_map"], result["eps"], f"eps-map of {source}"), key="ex-epsmap")
    c2.plotly_chart(charts.mask(chosen["eps_map"], result["eps"], chosen["mask_stats"]["full_eps_fraction"]),
                    key="ex-mask")
    pred = result["prediction"]
    c3.plotly_chart(charts.probabilities(classes, pred["probabilities"], label=result["input"].get("label"),
                                         title="Class probabilities (clean)"), key="ex-probs")
    d1, d2, d3 = st.columns(3)
    name = f"{result['run']}-e{result['epoch']}"
    d1.download_button("Overlay PNG", images.decode(chosen["overlay_png"]), f"{name}-{source}.png", "image/png",
                       icon=":material/image:", width="stretch")
    d2.download_button("Eps-map PNG", images.decode(chosen["eps_map_png"]), f"{name}-eps-map.png", "image/png",
                       icon=":material/grid_on:", width="stretch")
    d3.download_button("Result JSON", json.dumps(without_images(result), indent=1), f"{name}-explain.json",
                       "application/json", icon=":material/data_object:", width="stretch")


def dataset_classes(run: dict, n: int) -> list[str]:
    """Class names in index order from GET /api/datasets; indices when the dataset is not known there."""
    for info in ui.datasets(ui.api_url()):
        if info["name"] == run.get("dataset") and len(info["classes"]) == n:
            return list(info["classes"])
    return [str(i) for i in range(n)]


def without_images(result: dict) -> dict:
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("_png")}
        return [strip(v) for v in value] if isinstance(value, list) else value
    return strip(result)


def page() -> None:
    runs = ui.runs_with_epochs()
    if not runs:
        st.title("Explore")
        ui.no_runs_note()
        return
    with st.sidebar:
        run = ui.run_picker(runs, key="ex-run")
        config = ui.api().run(run["id"])["config"]
        choice = ui.image_picker(run, key="ex-img")
        st.divider()
        fields = cam_settings(run, config)
    st.title("Explore")
    st.caption(f"**{run['id']}** ({method_label(run.get('defense'), run.get('part'))}, {run.get('dataset')}, "
               f"{run.get('model')}) · epoch {fields['epoch']} · {choice.caption if choice else 'no image yet'}")
    if choice is None:
        st.info("Upload an image in the sidebar (or pick a probe image) to see its heatmaps.",
                icon=":material/arrow_back:")
        return
    if not fields["methods"]:
        st.warning("Choose at least one CAM method in the sidebar.")
        return
    if choice.upload is not None and fields["target"] == "label":
        fields["target"] = "pred"  # an upload has no label: explain the predicted class
    with st.spinner("Computing CAMs and eps-maps…"):
        result = ui.explain({**fields, **choice.fields}, choice.upload)
    names = [r["method"] for r in result["results"]]
    source = st.radio("eps-map and mask from", names, index=len(names) - 1, horizontal=True,
                      key=f"ex-source-{'|'.join(names)}",
                      help="Which CAM (or the ensemble) drives the eps-map, the mask and the PART attack")
    classes = dataset_classes(run, len(result["prediction"]["probabilities"]))
    headline(result, next(r for r in result["results"] if r["method"] == source))
    heat, adv = st.tabs([":material/local_fire_department: Heatmaps and mask", ":material/swords: Attack"])
    with heat:
        heatmaps_tab(result, source, classes)
    with adv:
        attack_tab(fields, choice, source, classes)


with ui.shown_errors():
    page()
