"""Evaluate: start an evaluation job (with an optional eps sweep), watch it, and read the results of the
selected runs: Table 1 per checkpoint and per method, PART against its baseline with McNemar p, robustness
vs eps, per-class accuracy, corruptions, the trade-off, the masking checklist and the report files."""

from __future__ import annotations

import re

import streamlit as st

from frontend import catalogue, job_panel, reports, ui

DEFAULT_ATTACKS = ["clean", "pgd20", "mma"]
OWN_MAPS = "the evaluated run (its own)"
SWEEP_ITEM = re.compile(r"\s*(\d+\.?\d*|\.\d+)(\s*/\s*\d+\.?\d*)?\s*")


def sweep_attack(text: str) -> str | None:
    """'0.05, 0.1, 8/255' -> 'pgd20@0.05,0.1,8/255' (None when empty); a malformed value raises ValueError."""
    items = [t.strip() for t in re.split(r"[,;\s]+", text) if t.strip()]
    bad = [t for t in items if not SWEEP_ITEM.fullmatch(t)]
    if bad:
        raise ValueError(f"eps sweep: '{bad[0]}' is not a number; accepted: 0.05, 8/255, ... separated by commas")
    return "pgd20@" + ",".join(items) if items else None


def new_evaluation(runs: list[dict]) -> None:
    st.subheader("New evaluation")
    c1, c2 = st.columns([2, 1])
    with c1:
        run = ui.run_picker(runs, key="ev-run")
    epoch = c2.selectbox("Epoch", ["newest"] + run["epochs"][::-1], key=f"ev-epoch-{run['id']}",
                         help="Checkpoint to evaluate")
    with st.form("eval-form"):
        c3, c4 = st.columns([3, 1])
        attacks = c3.multiselect("Attacks", catalogue.eval_attacks(), DEFAULT_ATTACKS, key="ev-attacks",
                                 help="pgd20: PGD-20 at the dataset's eps; aa: AutoAttack (slow on a CPU); "
                                      "corruptions: 19 types x 5 severities; checks: gradient-masking checklist")
        n = c4.number_input("Test images", 0, 100_000, 500, key="ev-n", help="0: the whole test set")
        sweep = st.text_input("Robustness vs eps: PGD-20 at these eps (optional)", "", key="ev-sweep",
                              placeholder="0.05, 0.1, 0.15  or  4/255, 8/255, 16/255",
                              help="Adds the attack pgd20@EPS,EPS,...: PGD-20 (step eps/4, random start) at each eps "
                                   "on the same images; the curves below draw it for every selected run")
        files = st.text_input("Corruption files (optional, a folder on the server)", "", key="ev-corruption-files",
                              placeholder="/data/CIFAR-10-C",
                              help="With the corruptions attack: read the published files instead of generating "
                                   "them. CIFAR-10-C / CIFAR-100-C: DIR/<corruption>.npy (5 severities stacked) "
                                   "and DIR/labels.npy; Tiny-ImageNet-C: DIR/<corruption>/<severity>/<wnid>/*.JPEG")
        others = [r["id"] for r in runs if r["id"] != run["id"]]
        map_run = st.selectbox("eps-maps of (pgd20-map, mma-map)", [OWN_MAPS] + others, key="ev-map-run",
                               help="The -map attacks bound each test image by its own eps-map, made from this "
                                    "run's CAM with its recipe, eps and eps_low (Algorithm 1)")
        submitted = st.form_submit_button("Start evaluation", type="primary", icon=":material/analytics:")
    if submitted:
        submit(run, epoch, attacks, int(n), sweep, files, map_run)


def submit(run: dict, epoch, attacks: list[str], n: int, sweep: str, files: str, map_run: str) -> None:
    try:
        swept = sweep_attack(sweep)
    except ValueError as err:
        st.error(str(err))
        return
    chosen = attacks + ([swept] if swept else [])
    if not chosen:
        st.error("Choose at least one attack, or give eps values to sweep.")
        return
    if files.strip() and "corruptions" not in attacks:
        st.error("Corruption files are read by the corruptions attack: add it, or clear the folder.")
        return
    with ui.shown_errors():
        job = ui.api().submit_eval(run["id"], None if epoch == "newest" else int(epoch), ",".join(chosen), n,
                                   corruption_files=files.strip() or None,
                                   map_run=None if map_run == OWN_MAPS else map_run)
        st.session_state[job_panel.WATCH] = job["id"]
        st.toast(f"Queued evaluation job {job['id']} of {run['id']}", icon=":material/analytics:")


def eval_jobs() -> None:
    jobs = [j for j in ui.api().jobs() if j["kind"] == "eval"]
    job = job_panel.pick(jobs, key="ev-watch") if jobs else None
    if job is not None:
        job_panel.watch(job)


def selection(runs: list[dict]) -> list[str]:
    ids = [r["id"] for r in runs]
    return st.multiselect("Runs in the results", ids, default=ids, key="ev-runs",
                          help="Every table and chart below shows these runs only")


def results(runs: list[dict]) -> None:
    ids = [r["id"] for r in runs]
    chosen = selection(runs)
    if not chosen:
        st.info("Choose one or more runs above.", icon=":material/checklist:")
        return
    with st.spinner("Reading the evaluation reports…"):
        data = reports.fetch(ui.api_url(), ",".join(i for i in ids if i in chosen))
    if not data["rows"]:
        st.info("No evaluation report among the selected runs yet. Start one above (clean + PGD-20 on 500 images "
                "takes under a minute for the small CNN), or run `part eval --run checkpoints/<run>`.",
                icon=":material/analytics:")
        return
    reports.table1(data)
    reports.methods(data)
    reports.tradeoff(data)
    reports.eps_curves(data)
    reports.per_class(data)
    reports.corruptions(data)
    reports.checklist(data)
    reports.report_files(data)


def page() -> None:
    st.title("Evaluate")
    runs = ui.runs_with_epochs()
    if not runs:
        ui.no_runs_note()
        return
    new_evaluation(runs)
    eval_jobs()
    st.divider()
    st.header("Results")
    results(runs)


with ui.shown_errors():
    page()
