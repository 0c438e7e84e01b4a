"""A job's live panel (progress, phase, epoch, ETA, metrics, log tail, cancel/resume) and the job list."""

from __future__ import annotations

import time

import streamlit as st

from frontend import charts, ui
from frontend.choices import method_label

ACTIVE = ("queued", "running")
RESUMABLE = ("failed", "interrupted", "cancelled")
REFRESH_S = 2.0
BADGE = {"queued": "gray", "running": "blue", "completed": "green", "failed": "red", "interrupted": "orange",
         "cancelled": "violet"}
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


def progress_text(job: dict) -> str:
    parts = [job.get("phase") or job["state"]]
    if job.get("epochs"):
        parts.append(f"epoch {job.get('epoch') or 0}/{job['epochs']}")
    if job["state"] == "running":
        parts.append(f"ETA {duration(job.get('eta_s'))}")
    elif job.get("finished_at") and job.get("started_at"):
        parts.append(f"took {duration(job['finished_at'] - job['started_at'])}")
    return " · ".join(parts)


def actions(job: dict) -> None:
    """Cancel a queued or running job, resume a stopped one, forget a finished one."""
    jid, state = job["id"], job["state"]
    with st.container(horizontal=True):
        if state in ACTIVE and st.button("Cancel", key=f"cancel-{jid}", icon=":material/stop_circle:"):
            ui.api().cancel(jid)
            st.rerun(scope="app")
        if state in RESUMABLE and st.button("Resume", key=f"resume-{jid}", icon=":material/play_arrow:",
                                            help="Continue from the run's newest complete epoch"):
            ui.api().resume(jid)
            st.rerun(scope="app")
        if state not in ACTIVE and st.button("Forget", key=f"forget-{jid}", icon=":material/delete:",
                                             help="Remove the job from the list; its run folder stays"):
            ui.api().delete_job(jid)
            st.session_state.pop(WATCH, None)
            st.rerun(scope="app")


def metrics_chart(job: dict) -> None:
    """The training run's per-epoch curves so far; they grow by a point each epoch."""
    if job["kind"] != "train":
        return
    try:
        run = ui.api().run(job["run_id"])
    except ui.ApiError:
        return  # the run folder appears with the first epoch's files
    if run["metrics"]:
        method = method_label(run.get("defense"), run.get("part"))
        series = [{"run": run["id"], "method": method, "label": method, "metrics": run["metrics"]}]
        burn = {run["id"]: run["config"].get("burn_in_epochs", 0)} if run.get("part") else {}
        st.plotly_chart(charts.epoch_curves(series, burn_in=burn, height=420), key=f"job-curves-{job['id']}")


def panel(job_id: str) -> None:
    job = ui.api().job(job_id)
    spec = job.get("spec") or {}
    what = spec.get("preset") if job["kind"] == "train" else \
        f"epoch {spec.get('epoch')}: {', '.join(spec.get('attacks', []))}"
    st.markdown(f"#### {badge(job['state'])} {job['kind']} job `{job_id}` · run `{job['run_id']}` · {what}")
    progress = 1.0 if job["state"] == "completed" else float(job.get("progress") or 0.0)
    st.progress(min(max(progress, 0.0), 1.0), text=f"{100 * progress:.0f}% · {progress_text(job)}")
    if job.get("message") and job["state"] not in ACTIVE:
        (st.success if job["state"] == "completed" else st.warning)(job["message"])
    latest = job.get("latest_metrics") or {}
    if latest:
        cols = st.columns(4)
        cols[0].metric("clean acc", ui.percent(latest.get("test_clean_acc")))
        cols[1].metric("PGD acc", ui.percent(latest.get("test_pgd_acc")))
        cols[2].metric("train loss", "–" if latest.get("train_loss") is None else f"{latest['train_loss']:.3f}")
        cols[3].metric("full-eps pixels", ui.percent(latest.get("full_eps_fraction")))
    metrics_chart(job)
    with st.expander("Log tail", expanded=job["state"] == "failed"):
        st.code(ui.api().job_log(job_id, tail=3000) or "(no output yet)", language=None)
    actions(job)
    if job["state"] not in ACTIVE and st.session_state.get(f"live-{job_id}"):
        st.session_state[f"live-{job_id}"] = False
        st.rerun(scope="app")  # the job ended: refresh the job list and the run pickers


@st.fragment(run_every=REFRESH_S)
def live_panel(job_id: str) -> None:
    with ui.shown_errors():
        panel(job_id)


def watch(job: dict) -> None:
    """The job's panel; it refreshes itself every few seconds while the job is queued or running."""
    if job["state"] in ACTIVE:
        st.session_state[f"live-{job['id']}"] = True
        live_panel(job["id"])
    else:
        panel(job["id"])


def job_table(jobs: list[dict]) -> None:
    rows = [{"job": j["id"], "kind": j["kind"], "run": j["run_id"], "state": j["state"],
             "epoch": f"{j.get('epoch') or 0}/{j['epochs']}" if j.get("epochs") else "",
             "progress": 1.0 if j["state"] == "completed" else (j.get("progress") or 0.0),
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
