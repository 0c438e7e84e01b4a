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


def experiment_title(e: dict) -> str:
    return f"{e['id']} · {len(e['evaluated'])} evaluated runs · {e['description']}"


def selection(found: list[dict]) -> list[str]:
    """Experiments to show (each in its own block); the featured one by default."""
    ids = [e["id"] for e in found]
    by_id = {e["id"]: e for e in found}
    default = [next((e["id"] for e in found if e["featured"]), ids[0])]
    return st.multiselect("Experiments", ids, default=default, key="ev-experiments",
                          format_func=lambda i: experiment_title(by_id[i]),
                          help="An experiment: runs with the same data, model, training length and subset, eps, "
                               "attack steps, optimiser and precision, that differ only in the method (AT or PART, "
                               "recipe, CAMs, eps_low) and the seed. Means and differences are computed inside one.")


def results() -> None:
    listing = ui.experiments()
    found = [e for e in listing["experiments"] if e["evaluated"]]
    for p in listing["problems"]:
        st.warning(f"Run {p['run']} is in no experiment: {p['problem']}", icon=":material/warning:")
    if not found:
        st.info("No evaluation report yet. Start one above (clean + PGD-20 on 500 images takes under a minute for "
                "the small CNN), or run `part eval --run checkpoints/<run>`.", icon=":material/analytics:")
        return
    chosen = selection(found)
    others = [e["id"] for e in found if e["id"] not in chosen]
    if others:
        st.caption(f"Other experiments with evaluated runs: {', '.join(others)} (runs of different experiments are "
                   "never pooled or compared; pick one above to see it in its own block).")
    if not chosen:
        st.info("Choose one or more experiments above.", icon=":material/checklist:")
        return
    with st.spinner("Reading the evaluation reports…"):
        data = reports.fetch(ui.api_url(), experiments=",".join(chosen))
    for s in data.get("skipped") or []:
        st.warning(f"Run {s['run']} is left out: {s['problem']}", icon=":material/warning:")
    for i, group in enumerate(data["experiments"]):
        sub = reports.of_experiment(data, group, "" if i == 0 else f"@{group['id']}")
        st.header(f"Experiment: {group['id']}")
        st.caption(f"{group['description']}. Runs: {', '.join(group['runs'])}.")
        reports.table1(sub)
        reports.methods(sub)
        reports.tradeoff(sub)
        reports.eps_curves(sub)
        reports.per_class(sub)
        reports.corruptions(sub)
        reports.checklist(sub)
        reports.report_files(sub)


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
    results()


with ui.shown_errors():
    page()
