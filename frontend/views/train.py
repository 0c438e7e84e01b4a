"""Train: a form seeded from the presets, launch, a live panel per job, cancel and resume, the job list."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import streamlit as st

from frontend import catalogue, job_panel, ui
from frontend.catalogue import eps_text

DEMO = dict(epochs=2, burn_in_epochs=1, subset=2000, eval_n=500)  # about a minute per epoch on a laptop CPU
SCALES = {"demo": "CPU demo (2 epochs, 2000 images)", "preset": "the preset as published"}
SCHEDULES = {"eps_schedule": ("eps schedule", "step:0.1:5=0.09"),
             "eps_low_schedule": ("eps_low schedule", "linear:0.1:0.0875:4:10"),
             "tau_schedule": ("tau schedule", "cosine:2:10:4:10"),
             "threshold_schedule": ("threshold schedule", "linear:0.8:1:4:10")}
SCHEDULE_HELP = ("linear:START:END:FROM:TO (START up to epoch FROM, END from TO on, a line between); "
                 "cosine:START:END:FROM:TO (a half cosine between); step:START:EPOCH=VALUE[:EPOCH=VALUE...]; "
                 "values like 0.1 or 7/255. tau and threshold matter only for the recipes that use them.")


def number(text: str) -> float:
    text = text.strip()
    return float(Fraction(text)) if "/" in text else float(text)


def seeded(preset: str, scale: str) -> dict[str, Any]:
    values = dict(catalogue.presets()[preset]["config"])
    return values | DEMO if scale == "demo" else values


def train_form(preset: str, scale: str, datasets: list[dict],
               max_nproc: int = 1) -> tuple[dict, str, int] | None:
    """The form; on submit, (overrides that differ from the preset, run name, training processes)."""
    v, k = seeded(preset, scale), f"{preset}-{scale}"
    models, defenses, recipes = catalogue.models(), catalogue.defenses(), catalogue.recipes()
    names = [d["name"] for d in datasets] or [v["dataset"]]
    ready = {d["name"]: d["available"] for d in datasets}
    with st.form(f"train-form-{k}"):
        c1, c2, c3, c4 = st.columns(4)
        name = c1.text_input("Run name", "", placeholder=f"{preset}-s{v['seed']}-<time>", key=f"tr-name-{k}")
        dataset = c2.selectbox("Dataset", names, index=names.index(v["dataset"]) if v["dataset"] in names else 0,
                               key=f"tr-ds-{k}", help="Datasets whose files the backend lacks are marked",
                               format_func=lambda n: n if ready.get(n, True) else f"{n} (files missing)")
        model = c3.selectbox("Model", models, index=models.index(v["model"]), key=f"tr-model-{k}")
        defense = c4.selectbox("Defense", list(defenses), index=list(defenses).index(v["defense"]),
                               format_func=defenses.get, key=f"tr-def-{k}")
        c1, c2, c3, c4 = st.columns(4)
        part = c1.toggle("PART (pixel reweighting)", v["part"], key=f"tr-part-{k}")
        methods = c2.multiselect("CAM method(s)", catalogue.cam_methods(), v["cam_methods"], key=f"tr-cam-{k}",
                                 help="Several methods are combined into an equal-weight ensemble")
        recipe = c3.selectbox("Mask recipe", list(recipes), index=list(recipes).index(v["recipe"]),
                              key=f"tr-recipe-{k}", help="; ".join(f"{r}: {h['help']}" for r, h in recipes.items()))
        seed = c4.number_input("Seed", 0, 2**31 - 1, v["seed"], key=f"tr-seed-{k}")
        c1, c2, c3, c4 = st.columns(4)
        eps = c1.text_input("eps", eps_text(v["eps"]), key=f"tr-eps-{k}", help="e.g. 0.1 or 8/255")
        eps_low = c2.text_input("eps_low", eps_text(v["eps_low"]), key=f"tr-epslow-{k}")
        burn_in = c3.number_input("Burn-in epochs", 0, 1000, v["burn_in_epochs"], key=f"tr-burn-{k}",
                                  help="Plain adversarial training before the first mask")
        mask_every = c4.number_input("Mask every (s epochs)", 0, 1000, v["mask_every"], key=f"tr-every-{k}",
                                     help="0: recompute the CAMs for every batch")
        c1, c2, c3, c4 = st.columns(4)
        epochs = c1.number_input("Epochs", 1, 1000, v["epochs"], key=f"tr-epochs-{k}")
        subset = c2.number_input("Subset (training images, 0 = all)", 0, 10_000_000, v["subset"], key=f"tr-subset-{k}")
        eval_n = c3.number_input("Eval images per epoch", 0, 100_000, v["eval_n"], key=f"tr-evaln-{k}",
                                 help="Clean and PGD accuracy after each epoch on this many test images")
        nproc = c4.number_input("Processes (DDP)", 1, max(1, max_nproc), 1, key=f"tr-nproc-{k}",
                                help=f"Train in this many processes with torchrun; the backend offers {max_nproc} "
                                     "(its GPUs, else its CPU cores). The global batch stays the preset's.")
        schedules = schedule_inputs(v, k)
        submitted = st.form_submit_button("Launch training", type="primary", icon=":material/rocket_launch:")
    if not submitted:
        return None
    try:
        form = dict(dataset=dataset, model=model, defense=defense, part=part, cam_methods=methods, recipe=recipe,
                    eps=number(eps), eps_low=number(eps_low), burn_in_epochs=int(burn_in),
                    mask_every=int(mask_every), epochs=int(epochs), subset=int(subset), seed=int(seed),
                    eval_n=int(eval_n), **schedules)
    except (ValueError, ZeroDivisionError):
        st.error(f"eps '{eps}' or eps_low '{eps_low}' is not a number; accepted: 0.1, 8/255, 1e-2")
        return None
    base = {**dict.fromkeys(SCHEDULES, ""), **catalogue.presets()[preset]["config"]}
    return {key: value for key, value in form.items() if value != base.get(key)}, name.strip(), int(nproc)


def schedule_inputs(v: dict, k: str) -> dict[str, str]:
    """A schedule per scheduled setting (empty: the constant above); the backend checks the grammar."""
    st.markdown("**Schedules** (PART++'s curriculum): the value of each epoch; empty keeps the setting constant")
    cols = st.columns(len(SCHEDULES))
    return {key: col.text_input(label, v.get(key, ""), key=f"tr-{key}-{k}", placeholder=example,
                                help=SCHEDULE_HELP).strip()
            for col, (key, (label, example)) in zip(cols, SCHEDULES.items())}


def placement_inputs() -> dict | None:
    """Where the job runs, when the backend can submit to Slurm: local, or Slurm with its allocation."""
    executors = catalogue.executors()
    slurm = executors.get("slurm") or {}
    if not slurm.get("available"):
        return None
    with st.expander("Where it runs", expanded=executors.get("default") == "slurm"):
        c1, c2, c3, c4, c5 = st.columns(5)
        where = c1.radio("Executor", ["local", "slurm"], index=["local", "slurm"].index(executors.get("default", "local")),
                         key="tr-executor", help="local: a process of the backend; slurm: sbatch on its cluster")
        if where == "local":
            return {"executor": "local"}
        defaults, partitions = slurm.get("defaults") or {}, slurm.get("partitions") or []
        partition = c2.selectbox("Partition", partitions, key="tr-partition",
                                 index=partitions.index(defaults["partition"]) if defaults.get("partition") in partitions else 0)
        nodes = c3.number_input("Nodes", 1, 1024, int(defaults.get("nodes") or 1), key="tr-nodes")
        gpus = c4.number_input("GPUs per node", 0, 64, int(defaults.get("gpus_per_node") or 0), key="tr-gpus")
        limit = c5.text_input("Time limit", defaults.get("time_limit") or "", key="tr-time", placeholder="04:00:00",
                              help="MM, HH:MM:SS or D-HH:MM:SS; empty: the partition's")
    return {"executor": "slurm", "slurm": {"partition": partition, "nodes": int(nodes), "gpus_per_node": int(gpus),
                                           "time_limit": limit.strip() or None}}


def launch(preset: str, overrides: dict, name: str, nproc: int) -> None:
    with ui.shown_errors():
        job = ui.api().submit_train(preset, overrides, name or None, nproc, st.session_state.get("tr-placement"))
        st.session_state[job_panel.WATCH] = job["id"]
        st.toast(f"Queued training job {job['id']} for run {job['run_id']}", icon=":material/rocket_launch:")


def new_run(health: dict) -> None:
    st.subheader("New training run")
    c1, c2 = st.columns([1, 2])
    presets = catalogue.presets()
    preset = c1.selectbox("Preset", list(presets), index=list(presets).index("fmnist-part"), key="tr-preset",
                          format_func=lambda p: f"{p} ({presets[p]['label']}, {presets[p]['config']['dataset']})")
    cpu = health.get("device", "cpu") == "cpu"
    scale = c2.radio("Size", list(SCALES), index=0 if cpu else 1, format_func=SCALES.get, horizontal=True,
                     key="tr-scale", help=f"The backend runs on {health.get('device')}")
    st.session_state["tr-placement"] = placement_inputs()
    submitted = train_form(preset, scale, ui.datasets(ui.api_url()), int(health.get("max_nproc") or 1))
    if submitted is not None:
        launch(preset, *submitted)


def jobs_section() -> None:
    st.subheader("Jobs")
    jobs = ui.api().jobs()
    if not jobs:
        st.caption("No jobs yet: launch one above. Jobs run as separate processes; the backend can restart "
                   "without losing them.")
        return
    job = job_panel.pick(jobs, key="tr-watch")
    if job is not None:
        job_panel.watch(job, table=True)  # the panel and the job list refresh together


def page() -> None:
    st.title("Train")
    health = ui.api().health()
    new_run(health)
    st.divider()
    jobs_section()


with ui.shown_errors():
    page()
