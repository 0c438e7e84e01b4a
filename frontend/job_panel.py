"""A job's live panel (progress, phase, epoch, ETA, metrics, log tail, cancel/resume) and the job list."""

from __future__ import annotations

import re
import time

import streamlit as st

from frontend import charts, ui
from frontend.catalogue import as_255

ACTIVE = ("queued", "pending", "running")  # pending: waiting in Slurm's queue
RESUMABLE = ("failed", "interrupted", "cancelled", "timeout", "preempted", "node_failure")
REFRESH_S = 2.0
BADGE = {"queued": "gray", "running": "blue", "completed": "green", "failed": "red", "interrupted": "orange",
         "cancelled": "violet", "pending": "gray", "timeout": "orange", "preempted": "orange",
         "node_failure": "red"}
WATCH = "watch-job"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} m" if h else (f"{m} m {s:02d} s" if m else f"{s} s")


def badge(state: str) -> str:
    return f":{BADGE.get(state, 'gray')}-badge[{state}]"


def progress_text(job: dict, now: float | None = None) -> str:
    if job["kind"] == "eval":
        return eval_progress_text(job)
    parts = [job.get("phase") or job["state"]]
    if job.get("epochs"):
        parts.append(f"epoch {job.get('epoch') or 0}/{job['epochs']}")
    if job["state"] == "running":
        parts.append(f"ETA {duration(job.get('eta_s'))}")
    elif job.get("finished_at") and job.get("started_at"):
        parts.append(f"took {duration(job['finished_at'] - job['started_at'])}")
    return " · ".join(parts)


# -- evaluation jobs: progress by attacks finished, weighted by what each costs --
def attack_cost(name: str) -> float:
    """Rough cost of an attack per image, in forward+backward passes: it weights progress and the ETA."""
    base, _, sweep = name.partition("@")
    stem = re.sub(r"-map$", "", base)
    m = re.fullmatch(r"(pgd|mma)(\d*)", stem)
    if m:
        steps = int(m.group(2) or 20)
        one = steps + 1 if m.group(1) == "pgd" else 3 * steps + 1
        return one * (len(sweep.split(",")) if sweep and not base.endswith("-map") else 1)
    return EVAL_COSTS.get(stem, 20.0)


EVAL_COSTS = {"clean": 1.0, "fgsm": 2.0, "aa": 400.0, "corruptions": 100.0, "checks": 260.0, "alignment": 3.0,
              "faithfulness": 30.0}


def stored_results(job: dict) -> dict:
    """{attack as asked: accuracy or None} of the attacks in the job's eval.json; a -map attack is stored as
    '<attack>@<map run>' (pgd20-map@fmnist-part-s0), so it counts under the name the job asked for."""
    results = dict(job.get("latest_metrics") or {})
    for key, value in list(results.items()):
        base, at, _ = key.partition("@")
        if at and base.endswith("-map"):
            results.setdefault(base, value)
    return results


ETA_AFTER = 0.05  # the share of the work (by cost) that must be timed before an ETA is shown


def eval_status(job: dict) -> dict:
    """{done, pending, progress, eta_s} of an evaluation job from the attacks already in its eval.json.

    The ETA scales the seconds the finished attacks took (not the time since the start, which holds the
    process's start-up and would make a cheap first attack predict minutes) by the cost of what is left,
    and waits until ETA_AFTER of the work has been timed: one clean pass says little about AutoAttack."""
    wanted = list((job.get("spec") or {}).get("attacks") or [])
    results = stored_results(job)
    done = [a for a in wanted if a in results]
    pending = [a for a in wanted if a not in results]
    total = sum(attack_cost(a) for a in wanted) or 1.0
    spent = sum(attack_cost(a) for a in done)
    progress = 1.0 if job["state"] == "completed" else spent / total
    seconds = job.get("attack_seconds") or {}
    timed = [a for a in done if a in seconds]
    timed_cost, timed_s = sum(attack_cost(a) for a in timed), sum(float(seconds[a]) for a in timed)
    eta = None
    if job["state"] == "running" and timed_cost >= ETA_AFTER * total and timed_s > 0:
        eta = timed_s / timed_cost * (total - spent)
    return {"done": done, "pending": pending, "progress": progress, "eta_s": eta}


def eval_progress_text(job: dict) -> str:
    status = eval_status(job)
    wanted = len(status["done"]) + len(status["pending"])
    parts = [f"{len(status['done'])}/{wanted} attacks done"]
    if job["state"] == "running" and not status["pending"]:
        parts.append("writing the reports")
    elif job["state"] == "running":
        parts.append(f"running {status['pending'][0]}")
        parts.append(f"ETA {duration(status['eta_s'])}" if status["eta_s"] is not None
                     else "ETA once more of the work is timed")
    elif job["state"] == "queued":
        parts.append("queued")
    elif job.get("finished_at") and job.get("started_at"):
        parts.append(f"took {duration(job['finished_at'] - job['started_at'])}")
    return " · ".join(parts)


def sweep_curve(job: dict, name: str) -> dict | None:
    """The eps sweep `name` of the job's run and epoch, as GET /api/evaluations reports it (None until it does)."""
    from frontend import reports

    try:
        rows = reports.fetch(ui.api_url(), job["run_id"])["rows"]
    except ui.ApiError:
        return None
    epoch = (job.get("spec") or {}).get("epoch")
    return next((c for r in rows if r["epoch"] == epoch for c in r["sweeps"] if c["attack"] == name), None)


def eval_tiles(job: dict) -> None:
    """A tile per attack: its accuracy as soon as it lands, else running or waiting."""
    status = eval_status(job)
    results = stored_results(job)
    names = status["done"] + status["pending"]
    for start in range(0, len(names), 4):
        cols = st.columns(4)
        for col, name in zip(cols, names[start:start + 4]):
            if name in results:
                value = results[name]
                curve = sweep_curve(job, name) if value is None and "@" in name and "-map@" not in name else None
                if curve:
                    col.metric(name, " / ".join(f"{100 * a:.1f}" for a in curve["accuracy"]) + " %",
                               help="accuracy at eps " + ", ".join(f"{e:g} ({as_255(e)})" for e in curve["eps"]))
                    continue
                col.metric(name, ui.percent(value, 2) if isinstance(value, (int, float)) else "done",
                           help="accuracy under this attack" if isinstance(value, (int, float)) else
                           "finished; its result is on the Evaluate page")
            else:
                running = job["state"] == "running" and name == status["pending"][0]
                col.metric(name, "running…" if running else ("waiting" if job["state"] in ACTIVE else "not run"))


ACTION_HELP = {
    ("train", "cancel"): "Stop the training process; the run keeps every epoch that finished (its checkpoints), "
                         "and Resume continues from the newest of them",
    ("eval", "cancel"): "Stop the evaluation; the attacks that already finished stay in the run's evaluation results",
    ("train", "resume"): "Start the training again in a new process: it continues from the run's newest "
                         "checkpoint, or from the beginning when no epoch finished",
    ("eval", "resume"): "Run the evaluation again into the same folder: the attacks that finished are kept, "
                        "the others run (AutoAttack continues from its saved state)",
}


def actions(job: dict) -> None:
    """Cancel a queued or running job, resume a stopped one, forget a finished one."""
    jid, state, kind = job["id"], job["state"], job["kind"]
    with st.container(horizontal=True):
        if state in ACTIVE and st.button("Cancel", key=f"cancel-{jid}", icon=":material/stop_circle:",
                                         help=ACTION_HELP.get((kind, "cancel"))):
            ui.api().cancel(jid)
            st.rerun(scope="app")
        if state in RESUMABLE and st.button("Resume", key=f"resume-{jid}", icon=":material/play_arrow:",
                                            help=ACTION_HELP.get((kind, "resume"))):
            ui.api().resume(jid)
            st.rerun(scope="app")
        if state not in ACTIVE and st.button("Forget", key=f"forget-{jid}", icon=":material/delete:",
                                             help="Remove the job from this list; its run folder and results "
                                                  "stay on disk"):
            ui.api().delete_job(jid)
            st.session_state.pop(WATCH, None)
            st.rerun(scope="app")


# A finished job's run on the pages that read it: `run` in the URL and the session for every page, and the
# Compare page's own `runs` list.
OPEN_IN = (("views/explore.py", "Open in Explore", ":material/search:", "its CAMs and eps-maps, epoch by epoch"),
           ("views/compare.py", "Open in Compare", ":material/compare:", "its probe images beside other runs"),
           ("views/evaluate.py", "Evaluate this run", ":material/analytics:", "its robustness results, or start them"))


def open_in(job: dict) -> None:
    """Buttons that open a completed job's run on Explore, Compare and Evaluate."""
    if job["state"] != "completed":
        return
    run_id = job["run_id"]
    with st.container(horizontal=True):
        for page, label, icon, what in OPEN_IN:
            if st.button(label, key=f"open-{page}-{job['id']}", icon=icon, help=f"Run `{run_id}`: {what}"):
                st.session_state["run"] = run_id
                params = {"run": run_id, **({"runs": run_id} if page.endswith("compare.py") else {})}
                st.switch_page(page, query_params=params)


def metrics_chart(job: dict) -> None:
    """The training run's per-epoch curves so far; they grow by a point each epoch."""
    if job["kind"] != "train":
        return
    try:
        run = ui.api().run(job["run_id"])
    except ui.ApiError:
        return  # the run folder appears with the first epoch's files
    if run["metrics"]:
        method = ui.method_label(run)
        series = [{"run": run["id"], "method": method, "label": method, "metrics": run["metrics"]}]
        burn = {run["id"]: run["config"].get("burn_in_epochs", 0)} if run.get("part") else {}
        st.plotly_chart(charts.epoch_curves(series, burn_in=burn, height=420), key=f"job-curves-{job['id']}")


def panel(job_id: str) -> dict:
    """The job's panel; returns the job as it was read, so a table beside it can show the same moment."""
    job = ui.api().job(job_id)
    spec = job.get("spec") or {}
    what = spec.get("preset") if job["kind"] == "train" else \
        f"epoch {spec.get('epoch')}: {', '.join(spec.get('attacks', []))}"
    where = f" · Slurm job `{job['scheduler_id']}`" if job.get("scheduler_id") else ""
    st.markdown(f"#### {badge(job['state'])} {job['kind']} job `{job_id}` · run `{job['run_id']}` · {what}{where}")
    progress = eval_status(job)["progress"] if job["kind"] == "eval" else \
        (1.0 if job["state"] == "completed" else float(job.get("progress") or 0.0))
    st.progress(min(max(progress, 0.0), 1.0), text=f"{100 * progress:.0f}% · {progress_text(job)}")
    if job.get("message") and job["state"] == "pending":
        st.info(job["message"])  # Slurm's reason: Resources, Priority, ...
    if job.get("message") and job["state"] not in ACTIVE:
        (st.success if job["state"] == "completed" else st.warning)(job["message"])
    latest = job.get("latest_metrics") or {}
    if job["kind"] == "eval":
        eval_tiles(job)
    elif latest:
        cols = st.columns(4)
        cols[0].metric("clean acc", ui.percent(latest.get("test_clean_acc")))
        cols[1].metric("PGD acc", ui.percent(latest.get("test_pgd_acc")))
        cols[2].metric("train loss", "–" if latest.get("train_loss") is None else f"{latest['train_loss']:.3f}")
        cols[3].metric("full-eps pixels", ui.percent(latest.get("full_eps_fraction")))
    metrics_chart(job)
    with st.expander("Log tail", expanded=job["state"] == "failed"):
        st.code(ui.api().job_log(job_id, tail=3000) or "(no output yet)", language=None)
    actions(job)
    open_in(job)
    if job["state"] not in ACTIVE and st.session_state.get(f"live-{job_id}"):
        st.session_state[f"live-{job_id}"] = False
        st.rerun(scope="app")  # the job ended: refresh the job list and the run pickers
    return job


def panel_and_table(job_id: str, table: bool) -> None:
    with st.container(border=True):
        job = panel(job_id)
    if table:  # read after the panel, with the panel's job in its row: both show the same moment
        job_table([job if j["id"] == job["id"] else j for j in ui.api().jobs()])


@st.fragment(run_every=REFRESH_S)
def live_panel(job_id: str, table: bool = False) -> None:
    with ui.shown_errors():
        panel_and_table(job_id, table)


def watch(job: dict, *, table: bool = False) -> None:
    """The job's panel (and with `table` the job list under it); while the job is queued or running both
    refresh themselves together every few seconds."""
    if job["state"] in ACTIVE:
        st.session_state[f"live-{job['id']}"] = True
        live_panel(job["id"], table)
    else:
        panel_and_table(job["id"], table)


def table_progress(job: dict) -> tuple[str, float]:
    """(the epoch or attacks column, progress in [0, 1]) of a job as the table shows it."""
    if job["kind"] == "eval":
        status = eval_status(job)
        return f"{len(status['done'])}/{len(status['done']) + len(status['pending'])} attacks", status["progress"]
    step = f"epoch {job.get('epoch') or 0}/{job['epochs']}" if job.get("epochs") else ""
    return step, 1.0 if job["state"] == "completed" else (job.get("progress") or 0.0)


def job_table(jobs: list[dict]) -> None:
    rows = [{"job": j["id"], "kind": j["kind"], "run": j["run_id"], "state": j["state"],
             "step": table_progress(j)[0], "progress": table_progress(j)[1],
             "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(j["created_at"])),
             "message": j.get("message") or ""} for j in jobs]
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")})


def pick(jobs: list[dict], *, key: str) -> dict | None:
    """The job to watch: the one just submitted, else the newest active one, else the newest."""
    if not jobs:
        return None
    ids = [j["id"] for j in jobs]
    wanted = st.session_state.get(WATCH)
    default = wanted if wanted in ids else next((j["id"] for j in jobs if j["state"] in ACTIVE), ids[0])
    names = {j["id"]: f"{j['id']} · {j['kind']} · run {j['run_id']}" for j in jobs}
    chosen = st.selectbox("Watch job", ids, index=ids.index(default), key=f"{key}-{default}", format_func=names.get)
    return jobs[ids.index(chosen)]
