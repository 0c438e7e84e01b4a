"""Compare: where and how much two runs' CAMs differ over training. The runs x epochs grid (the paper's Figure 2)
with a difference row B - A, the numbers under every cell (CAM energy on the object, top-k IoU, Spearman),
an epoch player, curves of those numbers, the Figure 2 export, the training curves and the trade-off."""

from __future__ import annotations

import streamlit as st

from frontend import catalogue, charts, compare_charts, compare_grid, ui

MAX_COLUMNS = 10
OWN = "each run's own"
SIZES = {"small": 96, "medium": 144, "large": 200, "x-large": 260}


def default_runs(runs: list[dict], featured: list[str] | None = None, run: str | None = None,
                 bases: dict[str, str] | None = None) -> list[str]:
    """The run chosen on another page with its baseline (`bases`: PART run -> baseline, from its experiment),
    when there is one; else the featured pair when the server has both runs (checkpoints/shipped.json names it,
    README says why); else a PART run (plain PART with the paper's recipe first) and its baseline; else the
    first two runs."""
    by_id, bases = {r["id"]: r for r in runs}, bases or {}
    if run in by_id and not (featured and run in featured and set(featured) <= set(by_id)):
        return [run] + ([bases[run]] if bases.get(run) in by_id else [])
    if featured and set(featured) <= set(by_id):
        return list(featured)
    parts = sorted((r for r in runs if r.get("part")), key=lambda r: (r.get("defense") != "at", r.get("recipe") != "paper"))
    for part in parts:
        if bases.get(part["id"]) in by_id:
            return [part["id"], bases[part["id"]]]
    return [r["id"] for r in runs[:2]]


def default_pair(chosen: list[str], runs: dict[str, dict]) -> tuple[str, str]:
    """(A, B) for B - A: the baseline as A and the reweighted run as B when there is one of each."""
    plain = [r for r in chosen if not runs[r].get("part")]
    a = plain[0] if plain else chosen[0]
    return a, next(r for r in chosen if r != a)


def spread(epochs: list[int], limit: int = MAX_COLUMNS) -> list[int]:
    """At most `limit` epochs, evenly spaced, keeping the first and the last."""
    if len(epochs) <= limit:
        return epochs
    step = (len(epochs) - 1) / (limit - 1)
    return sorted({epochs[round(i * step)] for i in range(limit)})


def controls(runs: list[dict]) -> tuple[list[str], ui.ImageChoice | None, str, tuple[str, str] | None, float]:
    ids = [r["id"] for r in runs]
    by_id = {r["id"]: r for r in runs}
    start = ui.shared_runs(ids) or default_runs(runs, catalogue.options().get("featured"), ui.shared_run(ids),
                                                ui.baselines())
    chosen = st.multiselect("Runs", ids, default=start, key="cmp-runs",
                            format_func=lambda i: ui.run_label(by_id[i]),
                            help="AT vs PART, TRADES vs PART-T, MART vs PART-M: runs of one dataset")
    if not chosen:
        return [], None, OWN, None, 20.0
    ui.remember_runs(chosen)
    choice = ui.image_picker(by_id[chosen[0]], key="cmp-img")
    offered = catalogue.cam_methods(*(by_id[r].get("model") for r in chosen))
    shared = ui.shared_methods(offered) or []
    # one method chosen elsewhere, unless it is every run's own (then the stored probes show the same maps)
    pick = shared[0] if len(shared) == 1 and any(by_id[r].get("cam_methods") != shared for r in chosen) else None
    method = st.selectbox("CAM method", [OWN] + offered, key="cmp-method",
                          index=1 + offered.index(pick) if pick else 0,
                          help="Each run's own method reads the stored per-epoch probes (fast); "
                               "another method is computed from every checkpoint")
    if method != OWN:
        ui.remember_methods([method])
    pair = None
    if len(chosen) > 1:
        st.markdown("**Difference row: B − A**")
        a0, b0 = default_pair(chosen, by_id)
        a = st.selectbox("A (subtracted)", chosen, index=chosen.index(a0), key="cmp-a")
        others = [r for r in chosen if r != a]
        b = st.selectbox("B", others, index=others.index(b0) if b0 in others else 0, key="cmp-b")
        pair = (a, b)
    top_k = st.number_input("Top-k % for the IoU", 1, 100, 20, step=5, key="cmp-topk",
                            help="IoU of the k % most important pixels of A's map and of B's map")
    return chosen, choice, method, pair, float(top_k)


def grid_rows(result: dict, details: dict[str, dict]) -> list[dict]:
    rows = []
    for run_id in result["runs"]:
        run = details[run_id]
        part = run.get("part")
        burn = run["config"].get("burn_in_epochs", 0) if part else 0
        label = ui.method_label(run)
        rows.append({"id": run_id, "title": label,
                     "note": f"burn-in: epoch{'s 1-' if burn > 1 else ' '}{burn}" if burn else "",
                     "phases": {e: ("burn-in", False) if e <= burn else (label, bool(part)) for e in result["epochs"]}})
    return rows


def energies(result: dict) -> dict[str, list[float | None]]:
    per = {r: {} for r in result["runs"]}
    for c in result["cells"]:
        per[c["run"]][c["epoch"]] = c.get("energy_on_object")
    return {r: [per[r].get(e) for e in result["epochs"]] for r in result["runs"]}


def pair_numbers(diff: dict | None) -> dict[int, dict]:
    if not diff:
        return {}
    return {c["epoch"]: {**c, "top_k": diff["top_k"]} for c in diff["cells"] if c["available"]}


def summary(result: dict) -> None:
    """The answer in one line of metrics: at the newest epoch both runs have, how much B differs from A."""
    diff = result.get("difference")
    numbers = pair_numbers(diff)
    if not numbers:
        return
    epoch = max(numbers)
    n, (a, b) = numbers[epoch], (diff["run_a"], diff["run_b"])
    energy = {c["run"]: c.get("energy_on_object") for c in result["cells"] if c["epoch"] == epoch}
    cols = st.columns(5)
    if energy.get(a) is not None and energy.get(b) is not None:
        cols[0].metric(f"on object · A ({a})", compare_grid.percent(energy[a]))
        cols[1].metric(f"on object · B ({b})", compare_grid.percent(energy[b]),
                       delta=f"{100 * (energy[b] - energy[a]):+.1f} pt vs A", delta_color="normal")
    else:
        cols[0].metric("on object", "–", help=result["object_mask"]["message"])
    cols[2].metric(f"top-{diff['top_k']:g}% IoU", f"{n['iou']:.3f}", help="1 = the same most important pixels")
    cols[3].metric("Spearman ρ", "–" if n["spearman"] is None else f"{n['spearman']:.3f}",
                   help="rank correlation of the two maps, pixel by pixel; 1 = same order")
    cols[4].metric("mean |B − A|", f"{n['mean_abs']:.3f}", help=f"largest {n['max_abs']:.3f}; CAMs are on 0..1")
    st.caption(f"At epoch {epoch}, the newest both runs have; the grid below shows every epoch. "
               + result["object_mask"]["message"] + ".")


def notes(result: dict) -> None:
    for text in result.get("sizes", []):
        st.warning(text + ".", icon=":material/aspect_ratio:")
    for missing in result["missing"]:
        st.info(missing["message"], icon=":material/hourglass_empty:")
    if not result["object_mask"]["known"]:
        st.warning(result["object_mask"]["message"], icon=":material/help:")
    if result.get("difference") and result["difference"].get("note"):
        st.warning(result["difference"]["note"], icon=":material/compare_arrows:")


def exports(fields: dict, upload, pair: tuple[str, str] | None) -> None:
    name = "figure2-" + ("-vs-".join(pair) if pair else fields["runs"].split(",")[0])
    cols = st.columns([1, 1, 4])
    for col, fmt, mime in ((cols[0], "png", "image/png"), (cols[1], "pdf", "application/pdf")):
        col.download_button(f"Figure 2 as {fmt.upper()}", data=lambda fmt=fmt: ui.api().compare_figure(fields, upload, fmt),
                            file_name=f"{name}.{fmt}", mime=mime, key=f"cmp-export-{fmt}",
                            icon=":material/download:", width="stretch")
    cols[2].caption("Drawn with matplotlib: rows are the runs and B − A, columns the epochs; viridis CAMs on 0..1, "
                    "the difference on a diverging scale centred at 0, the object outlined, the numbers under each map.")


def player(result: dict) -> None:
    diff = result.get("difference")
    if not diff:
        return
    maps = {(c["run"], c["epoch"]): c["heatmap"] for c in result["cells"] if c.get("heatmap")}
    a, b = diff["run_a"], diff["run_b"]
    numbers = pair_numbers(diff)
    if not numbers:  # no epoch has both maps (a run that takes another input size, say)
        st.caption(f"No epoch has a map of both {a} and {b}: nothing to play.")
        return
    st.plotly_chart(compare_charts.difference_player(
        result["epochs"], {e: m for (r, e), m in maps.items() if r == a}, {e: m for (r, e), m in maps.items() if r == b},
        {e: c["heatmap"] for e, c in numbers.items()}, numbers, names=(a, b), scale=diff["scale"],
        start=max(numbers) if numbers else result["epochs"][-1]), key="cmp-player")


def agreement(result: dict, details: dict[str, dict]) -> None:
    diff = result.get("difference")
    names = (diff["run_a"], diff["run_b"]) if diff else None
    methods = {r: ui.method_label(details[r]) for r in result["runs"]}
    burn_in = {r: d["config"].get("burn_in_epochs", 0) for r, d in details.items() if d.get("part")}
    st.plotly_chart(compare_charts.agreement_curves(result["epochs"], energies(result), pair_numbers(diff),
                                                    methods=methods, names=names, burn_in=burn_in),
                    key="cmp-agreement")
    st.caption("Left: the share of each run's CAM mass on the object (higher: the map points at the garment). "
               "Right: how alike the two maps are; 1 is identical. Burn-in epochs train PART as plain AT.")


def curves(details: dict[str, dict], marked: int) -> None:
    series = [{"run": rid, "method": ui.method_label(d),
               "label": f"{ui.method_label(d)} · {rid}", "metrics": d["metrics"]}
              for rid, d in details.items()]
    burn_in = {rid: d["config"].get("burn_in_epochs", 0) for rid, d in details.items() if d.get("part")}
    st.plotly_chart(charts.epoch_curves(series, burn_in=burn_in, marked_epoch=marked), key="cmp-curves")
    st.caption("Clean and PGD accuracy on each run's fixed test subset, measured after every epoch; the dashed "
               "line ends PART's burn-in (plain AT before it); the grey band is the grid's last epoch. Runs "
               "trained with schedules add a row with the value each epoch used: eps (solid) and eps_low (dashed) "
               "in /255, tau (solid) and threshold (dotted).")


def tradeoff(runs: list[dict]) -> None:
    points = [{"run": r["id"], "method": ui.method_label(r),
               "clean": r["latest"]["test_clean_acc"], "robust": r["latest"]["test_pgd_acc"],
               "epoch": r["latest"].get("epoch"), "attack": r["latest"].get("eval_attack", "pgd")}
              for r in runs if r.get("latest") and r["latest"].get("test_pgd_acc") is not None]
    if points:
        st.plotly_chart(charts.tradeoff(points), key="cmp-tradeoff")


def page() -> None:
    st.title("Compare")
    all_runs = ui.runs_with_epochs()
    if not all_runs:
        ui.no_runs_note()
        return
    with st.sidebar:
        chosen, choice, method, pair, top_k = controls(all_runs)
    if not chosen or choice is None:
        st.info("Choose one or more runs and an image in the sidebar.", icon=":material/arrow_back:")
        tradeoff(all_runs)
        return
    details = {rid: ui.api().run(rid) for rid in chosen}
    epochs = sorted({e for d in details.values() for e in d["epochs"] + d.get("probe_epochs", [])})
    low, high = epochs[0], epochs[-1]
    left, right = st.columns([3, 1])
    if len(epochs) > 1:
        low, high = left.select_slider("Epochs shown", epochs, value=(low, high), key="cmp-epochs",
                                       help=f"Up to {MAX_COLUMNS} columns, evenly spaced; the curves mark the last")
    size = SIZES[right.select_slider("Cell size", list(SIZES), value="medium", key="cmp-size",
                                     help="Wider than the page, the grid scrolls sideways; click a map to enlarge it")]
    shown = spread([e for e in epochs if low <= e <= high])
    fields = {"runs": ",".join(chosen), "epochs": ",".join(map(str, shown)), "top_k": top_k,
              "method": None if method == OWN else method, "pair": ",".join(pair) if pair else None, **choice.fields}
    with st.spinner("Building the grid…"):
        result = ui.compare(fields, choice.upload)
    notes(result)
    summary(result)
    st.caption(f"{choice.caption} · CAM: {method} · ✓/✗: prediction vs label · % on object: share of the CAM's "
               "mass on the object")
    outline = result["object_mask"].get("outline_png")
    show = st.toggle("Object outline", value=True, key="cmp-outline", disabled=outline is None,
                     help="The object's edge (" + result["object_mask"]["message"].split(";")[0] + ") over every map")
    st.html(compare_grid.table(result, grid_rows(result, details), size, choice.label,
                               outline=outline if show else None))
    st.html(compare_grid.colour_bars(result["difference"]["scale"] if result.get("difference") else None,
                                     catalogue.cam_gradient()))
    exports(fields, choice.upload, pair)
    if result.get("difference"):
        st.subheader("Epoch by epoch: A, B and B − A")
        player(result)
    st.subheader("Energy on the object and agreement over epochs")
    agreement(result, details)
    st.subheader("Per-epoch curves")
    curves(details, high)
    st.subheader("Trade-off")
    tradeoff([r for r in all_runs if r["id"] in chosen])
    st.caption("The selected runs' newest epochs; the Evaluate page compares every run.")


with ui.shown_errors():
    page()
