"""Evaluate: start an evaluation job on a run and epoch; the Table-1-style table, the corruption chart and
the gradient-masking checklist of every evaluation report."""

from __future__ import annotations

import streamlit as st

from frontend import job_panel, reports, ui
from frontend.choices import EVAL_ATTACKS

DEFAULT_ATTACKS = ["clean", "pgd20", "mma"]
OWN_MAPS = "the evaluated run (its own)"


def new_evaluation(runs: list[dict]) -> None:
    st.subheader("New evaluation")
    c1, c2 = st.columns([2, 1])
    with c1:
        run = ui.run_picker(runs, key="ev-run")
    epoch = c2.selectbox("Epoch", ["newest"] + run["epochs"][::-1], key=f"ev-epoch-{run['id']}",
                         help="Checkpoint to evaluate")
    with st.form("eval-form"):
        c3, c4 = st.columns([3, 1])
        attacks = c3.multiselect("Attacks", EVAL_ATTACKS, DEFAULT_ATTACKS, key="ev-attacks",
                                 help="pgd20: PGD-20 at the dataset's eps; aa: AutoAttack (slow on a CPU); "
                                      "corruptions: 19 types x 5 severities; checks: gradient-masking checklist")
        n = c4.number_input("Test images", 0, 100_000, 500, key="ev-n", help="0: the whole test set")
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
        if not attacks:
            st.error("Choose at least one attack.")
            return
        if files.strip() and "corruptions" not in attacks:
            st.error("Corruption files are read by the corruptions attack: add it, or clear the folder.")
            return
        with ui.shown_errors():
            job = ui.api().submit_eval(run["id"], None if epoch == "newest" else int(epoch), ",".join(attacks), int(n),
                                       corruption_files=files.strip() or None,
                                       map_run=None if map_run == OWN_MAPS else map_run)
            st.session_state[job_panel.WATCH] = job["id"]
            st.toast(f"Queued evaluation job {job['id']} of {run['id']}", icon=":material/analytics:")


def eval_jobs() -> None:
    jobs = [j for j in ui.api().jobs() if j["kind"] == "eval"]
    job = job_panel.pick(jobs, key="ev-watch") if jobs else None
    if job is not None:
        with st.container(border=True):
            job_panel.watch(job)


def page() -> None:
    st.title("Evaluate")
    runs = ui.runs_with_epochs()
    if not runs:
        ui.no_runs_note()
        return
    new_evaluation(runs)
    eval_jobs()
    st.divider()
    found = reports.collect(runs)
    if not found:
        st.info("No evaluation report yet. Start one above (clean + PGD-20 on 500 images takes under a minute "
                "for the small CNN), or run `part eval --run checkpoints/<run>`.", icon=":material/analytics:")
        return
    reports.table1(found)
    reports.corruptions(found)
    reports.checklist(found)


with ui.shown_errors():
    page()
