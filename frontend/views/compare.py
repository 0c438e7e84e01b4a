"""Compare: runs x epochs of CAM overlays for one image (the paper's Figure 2), per-epoch curves and the
natural-vs-robust trade-off of every run."""

from __future__ import annotations

import streamlit as st

from frontend import charts, images, ui
from frontend.choices import CAM_METHODS, method_label

MAX_COLUMNS = 10
MIN_COLUMNS = 5  # fewer epochs leave the rest empty, so cells keep one size
OWN = "each run's own"


def default_runs(runs: list[dict]) -> list[str]:
    """A PART run (plain PART with the paper's recipe first) and its baseline (same dataset and defense,
    no reweighting), else the first two runs."""
    parts = sorted((r for r in runs if r.get("part")), key=lambda r: (r.get("defense") != "at", r.get("recipe") != "paper"))
    for part in parts:
        for base in runs:
            if not base.get("part") and (base.get("dataset"), base.get("defense")) == (part.get("dataset"),
                                                                                        part.get("defense")):
                return [part["id"], base["id"]]
    return [r["id"] for r in runs[:2]]


def spread(epochs: list[int], limit: int = MAX_COLUMNS) -> list[int]:
    """At most `limit` epochs, evenly spaced, keeping the first and the last."""
    if len(epochs) <= limit:
        return epochs
    step = (len(epochs) - 1) / (limit - 1)
    return sorted({epochs[round(i * step)] for i in range(limit)})


def grid(result: dict, details: dict[str, dict], label: int | None) -> None:
    epochs = result["epochs"]
    widths = [1.6] + [1] * max(len(epochs), MIN_COLUMNS)
    head = st.columns(widths)
    head[0].markdown("**run \\ epoch**")
    for col, e in zip(head[1:], epochs):
        col.markdown(f"**epoch {e}**")
    cells = iter(result["cells"])
    for run_id in result["runs"]:
        run = details[run_id]
        row = st.columns(widths, vertical_alignment="top")
        part = run.get("part")
        burn = run["config"].get("burn_in_epochs", 0) if part else 0
        row[0].markdown(f"**{method_label(run.get('defense'), part)}**  \n`{run_id}`"
                        + (f"  \nburn-in: epoch{'s 1-' if burn > 1 else ' '}{burn}" if burn else ""))
        for col, e in zip(row[1:], epochs):
            phase = "burn-in" if e <= burn else method_label(run.get("defense"), part)
            cell(col, next(cells), e, label, phase, reweighted=bool(part) and e > burn)


def cell(col, found: dict, epoch: int, label: int | None, phase: str, reweighted: bool) -> None:
    """One overlay with its prediction, under how the epoch trained (burn-in, AT, PART, ...)."""
    col.markdown(f":{'red' if reweighted else 'gray'}[{phase}]")
    if not found["available"] or not found.get("overlay_png"):
        col.caption(f"epoch {epoch}: {found.get('message') or 'no checkpoint'}")
        return
    pred = found["prediction"]
    mark = "" if label is None else (" ✓" if pred["class_index"] == label else " ✗")
    col.image(images.decode(found["overlay_png"]), width="stretch", output_format="PNG",
              caption=f"{pred['class_name']} {100 * pred['confidence']:.0f}%{mark}")


def curves(details: dict[str, dict], marked: int) -> None:
    series = [{"run": rid, "method": method_label(d.get("defense"), d.get("part")),
               "label": f"{method_label(d.get('defense'), d.get('part'))} · {rid}", "metrics": d["metrics"]}
              for rid, d in details.items()]
    burn_in = {rid: d["config"].get("burn_in_epochs", 0) for rid, d in details.items() if d.get("part")}
    st.plotly_chart(charts.epoch_curves(series, burn_in=burn_in, marked_epoch=marked), key="cmp-curves")
    st.caption("Clean and PGD accuracy on each run's fixed test subset, measured after every epoch; the dashed "
               "line ends PART's burn-in (plain AT before it); the grey band is the grid's last epoch. Runs "
               "trained with schedules add a row with the value each epoch used: eps (solid) and eps_low (dashed) "
               "in /255, tau (solid) and threshold (dotted).")


def tradeoff(runs: list[dict]) -> None:
    points = [{"run": r["id"], "method": method_label(r.get("defense"), r.get("part")),
               "clean": r["latest"]["test_clean_acc"], "robust": r["latest"]["test_pgd_acc"],
               "epoch": r["latest"].get("epoch"), "attack": r["latest"].get("eval_attack", "pgd")}
              for r in runs if r.get("latest") and r["latest"].get("test_pgd_acc") is not None]
    if points:
        st.plotly_chart(charts.tradeoff(points), key="cmp-tradeoff")


def controls(runs: list[dict]) -> tuple[list[str], ui.ImageChoice | None, str]:
    ids = [r["id"] for r in runs]
    chosen = st.multiselect("Runs", ids, default=default_runs(runs), key="cmp-runs",
                            format_func=lambda i: ui.run_label(runs[ids.index(i)]),
                            help="AT vs PART, TRADES vs PART-T, MART vs PART-M: runs of one dataset")
    if not chosen:
        return [], None, OWN
    choice = ui.image_picker(runs[ids.index(chosen[0])], key="cmp-img")
    method = st.selectbox("CAM method", [OWN] + CAM_METHODS, key="cmp-method",
                          help="Each run's own method reads the stored per-epoch probes (fast); "
                               "another method is computed from every checkpoint")
    return chosen, choice, method


def page() -> None:
    st.title("Compare")
    all_runs = ui.runs_with_epochs()
    if not all_runs:
        ui.no_runs_note()
        return
    with st.sidebar:
        chosen, choice, method = controls(all_runs)
    if not chosen or choice is None:
        st.info("Choose one or more runs and an image in the sidebar.", icon=":material/arrow_back:")
        tradeoff(all_runs)
        return
    details = {rid: ui.api().run(rid) for rid in chosen}
    epochs = sorted({e for d in details.values() for e in d["epochs"]})
    low, high = (epochs[0], epochs[-1]) if len(epochs) > 1 else (epochs[0], epochs[0])
    if len(epochs) > 1:
        low, high = st.select_slider("Epochs shown", epochs, value=(low, high), key="cmp-epochs",
                                     help=f"Up to {MAX_COLUMNS} columns, evenly spaced; the curves mark the last")
    shown = spread([e for e in epochs if low <= e <= high])
    st.caption(f"{choice.caption} · CAM: {method} · jet scale 0 (blue) → 1 (red) · ✓/✗: prediction vs label")
    fields = {"runs": ",".join(chosen), "epochs": ",".join(map(str, shown)),
              "method": None if method == OWN else method, **choice.fields}
    with st.spinner("Building the grid…"):
        result = ui.compare(fields, choice.upload)
    grid(result, details, choice.label)
    st.image(images.jet_bar(), width="stretch", output_format="PNG")
    st.subheader("Per-epoch curves")
    curves(details, high)
    st.subheader("Trade-off")
    tradeoff(all_runs)


with ui.shown_errors():
    page()
