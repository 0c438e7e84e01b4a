"""Explore: one image through one checkpoint: what the model sees, CAM overlays, the ensemble, the eps-map,
the mask, how faithful and how on-object the maps are, an attack, and exports."""

from __future__ import annotations

import csv
import io
import json
import re

import plotly.graph_objects as go
import streamlit as st

from frontend import catalogue, charts, images, ui
from frontend.attack_view import attack_tab
from frontend.catalogue import as_255, eps_text

QUADRANTS = ("ul", "ur", "bl", "br")
PER_ROW = 6  # overlays per row: nine methods and the ensemble stay large enough to see


def members(name: str) -> list[str]:
    """The methods of 'ensemble(gradcam+gradcam+++xgradcam)' (names may hold '+'), or [name] for one method."""
    if not (name.startswith("ensemble(") and name.endswith(")")):
        return [name]
    known = "|".join(re.escape(m) for m in sorted(catalogue.cam_methods(), key=len, reverse=True))
    return re.findall(rf"(?:^|(?<=\+))({known})(?=\+|$)", name[9:-1]) or name[9:-1].split("+")


def short_name(name: str) -> str:
    """'ensemble(gradcam+layercam+...)' -> 'ensemble of 3 maps' (the members are listed once, under the grid)."""
    return f"ensemble of {len(members(name))} maps" if name.startswith("ensemble(") else name


def training_mask(config: dict) -> dict:
    """The mask the run trained with (or, for a run without PART, the one its config names): its CAM methods and
    weights, recipe, eps, eps_low and the recipe's options; what the config lacks, from GET /api/options."""
    defaults = catalogue.options()["defaults"]
    recipe = config.get("recipe") or defaults["recipe"]
    options = catalogue.recipes().get(recipe, {}).get("options", {})
    eps = float(config.get("eps", defaults["eps"]))
    return {"methods": list(config.get("cam_methods") or defaults["cam_methods"]),
            "weights": [float(w) for w in config.get("cam_weights") or []], "recipe": recipe, "eps": eps,
            "eps_low": min(float(config.get("eps_low", defaults["eps_low"])), eps),
            "options": {k: config.get(k, default) for k, default in options.items()}}


def mask_text(methods: list[str], recipe: str, eps: float, eps_low: float, options: dict) -> str:
    """'gradcam, recipe paper, eps 0.1, eps_low 0.0875, threshold 1'"""
    extra = "".join(f", {k} {v:g}" if isinstance(v, (int, float)) else f", {k} {v}" for k, v in options.items())
    return f"{'+'.join(methods)}, recipe {recipe}, eps {eps:g}, eps_low {eps_low:g}{extra}"


def mask_line(run: dict, own: dict, result: dict, source: str) -> str:
    """In one line, whether the mask shown is the one the run trained with."""
    trained = mask_text(own["methods"], own["recipe"], own["eps"], own["eps_low"], own["options"])
    shown = mask_text(members(source), result["recipe"], result["eps"], result["eps_low"], result["options"] or {})
    if not run.get("part"):
        return (f"**{run['id']} trained without a mask** ({ui.method_label(run)}: the scalar eps on every pixel); "
                f"shown: {shown}.")
    same = (members(source) == own["methods"] and shown == trained and
            (len(own["methods"]) == 1 or not own["weights"] or len(set(own["weights"])) == 1))
    if same:
        return f"**The training mask of {run['id']}**: {trained}."
    return f"**Not the training mask of {run['id']}** (that is {trained}); shown: {shown}."


def cam_settings(run: dict, config: dict, *, has_label: bool = True) -> dict:
    """Sidebar controls -> the explain form's fields (without the image). They open on the run's training mask,
    or on the methods chosen before (ui.shared_methods)."""
    rid, own = run["id"], training_mask(config)
    epoch = st.select_slider("Epoch", run["epochs"], value=run["epochs"][-1], key=f"ex-epoch-{rid}",
                             help="Checkpoint to explain; burn-in epochs are plain AT")
    offered = catalogue.cam_methods(run.get("model"))
    start = ui.shared_methods(offered) or own["methods"] + (["ensemble"] if len(own["methods"]) > 1 else [])
    methods = st.multiselect("CAM methods", offered, default=[m for m in start if m in offered],
                             key=f"ex-methods-{rid}", help=f"The run trained with {'+'.join(own['methods'])}")
    ensemble = st.toggle("Ensemble of the methods", value="ensemble" in start, key=f"ex-ens-{rid}",
                         disabled=len(methods) < 2, help="Average of the normalised CAMs (the run's weights when "
                                                         "the methods are its own, else equal weights)")
    ensemble = ensemble and len(methods) > 1
    ui.remember_methods(methods + (["ensemble"] if ensemble else []))
    if has_label:
        target = st.radio("Explain the class", ["label", "pred"], horizontal=True, key="ex-target",
                          format_func={"label": "true label", "pred": "prediction"}.get,
                          help="Probes and dataset samples have a label; an upload has none")
    else:
        target = st.radio("Explain the class", ["pred"], horizontal=True, key="ex-target-upload", disabled=True,
                          format_func=lambda _: "prediction",
                          help="An upload has no label: its CAMs explain the predicted class")
        st.caption("An upload has no true label: the prediction is explained.")
    st.divider()
    recipes = catalogue.recipes()
    recipe = st.selectbox("Mask recipe", list(recipes), index=list(recipes).index(own["recipe"]),
                          key=f"ex-recipe-{rid}", format_func=lambda r: f"{r}: {recipes[r]['help']}")
    c1, c2 = st.columns(2)
    eps = c1.text_input("eps", eps_text(own["eps"]), key=f"ex-eps-{rid}", help="full budget: 0.1 or 8/255")
    eps_low = c2.text_input("eps_low", eps_text(own["eps_low"]), key=f"ex-epslow-{rid}",
                            help="budget of unimportant pixels")
    fields = {"run": rid, "epoch": epoch, "methods": ",".join(methods), "ensemble": ensemble,
              "target": target, "recipe": recipe, "eps": eps.strip(), "eps_low": eps_low.strip()}
    if ensemble and methods == own["methods"] and own["weights"]:
        fields["weights"] = ",".join(f"{w:g}" for w in own["weights"])
    options = recipes[recipe]["options"]
    value = {k: own["options"].get(k, default) for k, default in options.items()}
    if "threshold" in options:
        fields["threshold"] = st.slider("threshold (w = cam / mean cam)", 0.0, 3.0, float(value["threshold"]), 0.05,
                                        key=f"ex-thr-{rid}")
    if "tau" in options:
        fields["tau"] = st.slider("tau (sigmoid sharpness)", 0.5, 50.0, float(value["tau"]), 0.5, key=f"ex-tau-{rid}")
    if "quadrant" in options:
        fields["quadrant"] = st.radio("quadrant", list(QUADRANTS), horizontal=True, key=f"ex-q-{rid}",
                                      index=QUADRANTS.index(value["quadrant"]))
    return fields


def is_continuous(values: list[list[float]], eps: float, eps_low: float) -> bool:
    """Whether a map takes budgets between eps_low and eps (reference, soft, uniform-mean), not just the two."""
    return any(min(abs(v - eps), abs(v - eps_low)) > 1e-4 for row in values for v in row)


def model_input(choice: ui.ImageChoice, result: dict) -> None:
    """The upload beside what the model actually sees, and what the conversion did to it."""
    inp = result["input"]
    grey = "grey" if inp["channels"] == 1 else "RGB"
    c1, c2, c3 = st.columns([1, 1, 3])
    thumb, text = images.preview(choice.upload[1], 200)
    if thumb is not None:
        c1.image(thumb, caption=f"your file: {text}", width=160, output_format="PNG")
    c2.image(images.decode(inp["image_png"]), caption=f"model input: {inp['size']}x{inp['size']} {grey}", width=160,
             output_format="PNG")
    with c3:
        if inp.get("fit_steps"):
            st.info(f"**Fitted to {result.get('dataset') or 'the dataset'}'s style:** " + "; ".join(inp["fit_steps"]) + ".",
                    icon=":material/auto_fix_high:")
        if inp.get("notes"):
            st.warning("**The model sees a different image than your file:** " + "; ".join(inp["notes"]) + ".",
                       icon=":material/warning:")
        if not inp.get("fit"):
            st.caption("A photo rarely looks like the training images; *Fit to the dataset's style* in the sidebar "
                       "makes it closer (for Fashion-MNIST: a light object on black, filling the frame).")


def headline(result: dict, chosen: dict) -> None:
    pred, inp = result["prediction"], result["input"]
    cols = st.columns(5)
    cols[0].metric("Prediction", pred["class_name"], f"{100 * pred['confidence']:.1f}% confident", delta_color="off",
                   delta_arrow="off")
    right = inp.get("label") == pred["class_index"]
    cols[1].metric("True label", inp.get("label_name") or "unknown",
                   None if inp.get("label") is None else ("correct" if right else "wrong"),
                   delta_color="normal" if right else "inverse")
    if is_continuous(chosen["eps_map"], result["eps"], result["eps_low"]):
        lo, hi = images.value_range(chosen["eps_map"])
        cols[2].metric("Budget range (/255)", f"{255 * lo:.1f} – {255 * hi:.1f}",
                       help="A continuous recipe: every pixel gets its own budget between eps_low and eps, so no "
                            "pixel (or almost none) sits at the full eps; this is the range of this map")
    else:
        cols[2].metric("Full-eps fraction", ui.percent(chosen["mask_stats"]["full_eps_fraction"]),
                       help="Share of pixels whose budget is the full eps (the rest get eps_low)")
    cols[3].metric("Mean budget (of eps)", f"{100 * chosen['mask_stats']['mean_eps_ratio']:.1f}%",
                   help="Average per-pixel budget relative to eps")
    cols[4].metric("eps / eps_low (/255)", f"{255 * result['eps']:.3g} / {255 * result['eps_low']:.3g}",
                   help=f"eps {as_255(result['eps'])}, eps_low {as_255(result['eps_low'])}; recipe "
                        f"{result['recipe']} {result['options'] or ''}")


def test_set_numbers(detail: dict, epoch: int) -> dict:
    """This epoch's alignment and faithfulness over the test set, from the run's evaluations (largest n each)."""
    found: dict = {}
    for report in detail.get("evaluations", []):
        if report.get("epoch") != epoch:
            continue
        for kind in ("alignment", "faithfulness"):
            rec = report.get("attacks", {}).get(kind)
            if rec and (kind not in found or (rec.get("n") or 0) > (found[kind].get("n") or 0)):
                found[kind] = rec
    return found


def cam_numbers(result: dict, chosen: dict, detail: dict) -> None:
    """How much of the chosen map is on the object and how faithful it is: this image, and the test set."""
    cols = st.columns(4)
    energy, share = chosen.get("energy_on_object"), result.get("object_fraction")
    cols[0].metric("Energy on the object", "no object mask" if energy is None else f"{energy:.2f}",
                   None if share is None else f"an even map: {share:.2f}", delta_color="off", delta_arrow="off",
                   help="Share of this map's mass on the object (input pixels brighter than 0.1 for Fashion-MNIST); "
                        "a map spread evenly scores the object's share of the pixels")
    road = chosen.get("road") or {}
    cols[1].metric("ROAD (this map)", "–" if not road else f"{road['road_combined']:+.3f}",
                   None if not road else f"MoRF {road['road_morf']:+.2f} · LeRF {road['road_lerf']:+.2f}",
                   delta_color="off", delta_arrow="off",
                   help="Faithfulness (ROAD, pytorch_grad_cam.metrics.road): change of the explained class's "
                        "probability when the most (MoRF) or least (LeRF) relevant 10-90 % of pixels are imputed; "
                        "combined = (LeRF - MoRF) / 2, higher = more faithful")
    found = test_set_numbers(detail, result["epoch"])
    al, fa = found.get("alignment"), found.get("faithfulness")
    own = "+".join((al or fa or {}).get("cam_methods", []))
    if al is not None:
        cols[2].metric(f"Test set: energy ({al['n']})",
                       "no object mask" if al.get("energy") is None else f"{al['energy']:.3f}",
                       None if al.get("object_fraction") is None else f"an even map: {al['object_fraction']:.3f}",
                       delta_color="off", delta_arrow="off", help=f"Energy on the object over {al['n']} test images: part eval "
                                                                  f"--attacks alignment, the run's {own} of the true "
                                                                  f"label, epoch {result['epoch']}")
    if fa is not None:
        cols[3].metric(f"Test set: ROAD ({fa['n']})", f"{fa['road_combined']:+.3f}",
                       f"MoRF {fa['road_morf']:+.2f} · LeRF {fa['road_lerf']:+.2f}", delta_color="off",
                       delta_arrow="off", help=f"ROAD over {fa['n']} test images: part eval --attacks faithfulness, the "
                                                 f"run's {own}, epoch {result['epoch']}")
    if al is None and fa is None:
        cols[2].caption(f"No test-set alignment or faithfulness for epoch {result['epoch']} yet: "
                        f"`part eval --run RUN --epoch {result['epoch']} --attacks alignment,faithfulness`.")


def budget_text(r: dict, result: dict) -> str:
    """'38.0% at eps' for a two-level map; '22.3-24.4 /255' for a continuous one (where ~0 % is at eps)."""
    if is_continuous(r["eps_map"], result["eps"], result["eps_low"]):
        lo, hi = images.value_range(r["eps_map"])
        return f"{255 * lo:.1f}–{255 * hi:.1f} /255"
    return f"{ui.percent(r['mask_stats']['full_eps_fraction'])} at eps"


def overlays(result: dict) -> None:
    items = [("Original", images.decode(result["input"]["image_png"]))]
    items += [(f"{short_name(r['method'])} · {budget_text(r, result)}", images.decode(r["overlay_png"]))
              for r in result["results"]]
    per_row = min(PER_ROW, max(len(items), 4))
    for start in range(0, len(items), per_row):
        for col, (caption, data) in zip(st.columns(per_row), items[start:start + per_row]):
            col.image(data, caption=caption, width="stretch", output_format="PNG")
    ensembles = [r["method"] for r in result["results"] if r["method"].startswith("ensemble(")]
    st.html(f'<div style="height:14px;border-radius:2px;background:{catalogue.cam_gradient()}"></div>')
    text = (f"CAM importance on the scale the mask reads it, jet: {result['overlay_scale']}. "
            "Pixels the model relies on for its class get the full budget eps.")
    if ensembles:
        text += f" The ensemble is the equal-weight mean of {', '.join(members(ensembles[0]))}."
    st.caption(text)


def eps_map_chart(chosen: dict, source: str) -> go.Figure:
    """The eps-map on a colour scale fitted to its own range (a scale from 0 hides budgets near eps)."""
    lo, hi = images.value_range(chosen["eps_map"])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 / 255, hi + 0.5 / 255
    return charts.pixel_map(chosen["eps_map"], title=f"eps-map of {short_name(source)}", scale=charts.EPS_SCALE,
                            zmin=255 * lo, zmax=255 * hi, factor=255, unit="/255", colorbar="eps (/255)")


def budget_histogram(chosen: dict, result: dict) -> go.Figure:
    """A continuous map has no binary mask: the distribution of its per-pixel budgets, eps_low and eps marked."""
    values = [255 * v for row in chosen["eps_map"] for v in row]
    fig = go.Figure(go.Histogram(x=values, nbinsx=30, marker_color="#3b528b",
                                 hovertemplate="%{x} /255: %{y} pixels<extra></extra>"))
    for value, name in ((result["eps_low"], "eps_low"), (result["eps"], "eps")):
        fig.add_vline(x=255 * value, line_dash="dash", line_color="#888", annotation_text=name)
    fig.update_xaxes(title="budget (/255)", range=[255 * result["eps_low"] - 0.5, 255 * result["eps"] + 0.5])
    fig.update_yaxes(title="pixels")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text="Budgets: a continuous recipe, no pixel mask", font_size=14))
    return fig


def metrics_csv(metrics: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in metrics for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, keys)
    writer.writeheader()
    writer.writerows([{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in metrics])
    return buffer.getvalue()


def heatmaps_tab(result: dict, source: str, classes: list[str], fields: dict, choice: ui.ImageChoice,
                 detail: dict) -> None:
    overlays(result)
    by_method = {r["method"]: r for r in result["results"]}
    chosen = by_method[source]
    c1, c2, c3 = st.columns([1, 1, 1.2])
    c1.plotly_chart(eps_map_chart(chosen, source), key="ex-epsmap")
    if is_continuous(chosen["eps_map"], result["eps"], result["eps_low"]):
        c2.plotly_chart(budget_histogram(chosen, result), key="ex-mask")
    else:
        c2.plotly_chart(charts.mask(chosen["eps_map"], result["eps"], chosen["mask_stats"]["full_eps_fraction"]),
                        key="ex-mask")
    pred = result["prediction"]
    c3.plotly_chart(charts.probabilities(classes, pred["probabilities"], label=result["input"].get("label"),
                                         title="Class probabilities (clean)"), key="ex-probs")
    st.markdown("**Downloads**")
    d1, d2, d3, d4, d5 = st.columns(5)
    name = f"{result['run']}-e{result['epoch']}"
    d1.download_button("Overlay PNG", images.decode(chosen["overlay_png"]), overlay_file(name, source),
                       "image/png", icon=":material/image:", width="stretch", key=f"ex-overlay-{source}",
                       help=f"The overlay of {short_name(source)}, as shown above")
    d2.download_button("Eps-map PNG", images.eps_map_figure(chosen["eps_map"], f"eps-map of {short_name(source)}, "
                                                                                f"{result['recipe']} recipe, {name}"),
                       f"{name}-eps-map.png", "image/png", icon=":material/grid_on:", width="stretch",
                       help="Viridis over the map's own range, with a colour bar in /255")
    d3.download_button("Result JSON", json.dumps(without_images(result), indent=1), f"{name}-explain.json",
                       "application/json", icon=":material/data_object:", width="stretch")
    export = fields | {"source": source} | choice.fields
    d4.download_button("Arrays NPZ", lambda: ui.export_npz(export, choice.upload), f"{name}-explore.npz",
                       "application/octet-stream", icon=":material/database:", width="stretch", key="ex-npz",
                       help="numpy.load: input, cams, eps_maps, masks, and the image attacked (PGD-10) within the "
                            "scalar eps and within the eps-map of the chosen map")
    d5.download_button("Epoch metrics CSV", metrics_csv(detail.get("metrics", [])), f"{result['run']}-metrics.csv",
                       "text/csv", icon=":material/table:", width="stretch",
                       help="The run's per-epoch metrics (metrics.jsonl) as a table")


def overlay_file(name: str, source: str) -> str:
    """'run-e10-gradcam.png'; an ensemble's names all its members: 'run-e10-ensemble-gradcam+layercam.png'."""
    method = f"ensemble-{'+'.join(members(source))}" if source.startswith("ensemble(") else source
    return f"{name}-{method}.png"


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


def shuffled_note(result: dict) -> None:
    donor = result.get("shuffled_with")
    if donor:
        st.info(f"**shuffled** gives each image the map of *another* image of its batch (one image alone would keep "
                f"its own, and equal *paper*). Here the eps-map and mask come from the CAM of probe {donor['probe']} "
                f"(test #{donor['index']}, {donor['label_name']}); the overlays still show this image's own CAMs.",
                icon=":material/shuffle:")


def page() -> None:
    runs = ui.runs_with_epochs()
    if not runs:
        st.title("Explore")
        ui.no_runs_note()
        return
    with st.sidebar:
        featured = [r for r in runs if r["id"] in (catalogue.options().get("featured") or []) and r.get("part")]
        run = ui.run_picker(runs, key="ex-run", default=featured[0]["id"] if featured else None)
        detail = ui.api().run(run["id"])
        config = detail["config"]
        choice = ui.image_picker(run, key="ex-img")
        st.divider()
        fields = cam_settings(run, config, has_label=choice is None or choice.upload is None)
    st.title("Explore")
    st.caption(f"**{run['id']}** ({ui.method_label(run)}, {run.get('dataset')}, "
               f"{run.get('model')}) · epoch {fields['epoch']} · {choice.caption if choice else 'no image yet'}")
    if choice is None:
        st.info("Upload an image in the sidebar (or pick a probe image) to see its heatmaps.",
                icon=":material/arrow_back:")
        return
    if not fields["methods"]:
        st.warning("Choose at least one CAM method in the sidebar.")
        return
    with st.spinner("Computing CAMs and eps-maps…"):
        result = ui.explain({**fields, **choice.fields}, choice.upload)
    if choice.upload is not None:
        model_input(choice, {**result, "dataset": run.get("dataset")})
    names = [r["method"] for r in result["results"]]
    source = names[0] if len(names) == 1 else st.radio(
        "eps-map and mask from", names, index=len(names) - 1, horizontal=True, key=f"ex-source-{'|'.join(names)}",
        format_func=short_name, help="Which CAM (or the ensemble) drives the eps-map, the mask and the PART attack")
    st.caption(mask_line(run, training_mask(config), result, source))
    shuffled_note(result)
    classes = dataset_classes(run, len(result["prediction"]["probabilities"]))
    chosen = next(r for r in result["results"] if r["method"] == source)
    headline(result, chosen)
    cam_numbers(result, chosen, detail)
    heat, adv = st.tabs([":material/local_fire_department: Heatmaps and mask", ":material/swords: Attack"])
    with heat:
        heatmaps_tab(result, source, classes, fields, choice, detail)
    with adv:
        attack_tab(fields, choice, source, classes)


with ui.shown_errors():
    page()
