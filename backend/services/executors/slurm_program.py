"""The batch script of every Slurm job the studio submits: `slurm_program.py SPEC.json` (standard library only).

It picks its cell of SPEC (SLURM_ARRAY_TASK_ID, or the one cell), runs the cell's `part` command line (its
resume line when Slurm restarts a requeued job), and writes the exit code into the cell's rc file, which
the API reads once Slurm has forgotten the job. Before the time limit Slurm sends SIGUSR1 (--signal=B:USR1@S):
the program asks the run to stop at its epoch's end (a file in the run folder, seen by every rank on every
node, and by a trainer still importing torch, which a signal would kill); the trainer then exits with
STOPPED_FOR_LIMIT, and with
requeue set the program queues the job again (`scontrol requeue`), to resume from that epoch.
"""

import json
import os
import signal
import subprocess
import sys

STOPPED_FOR_LIMIT = 75  # as backend.services.executors.slurm and part.training.trainer say
HEAD_NODE = "{head_node}"


def _head_node() -> str:
    nodes = os.environ.get("SLURM_JOB_NODELIST", "")
    out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True)
    names = out.stdout.split()
    return names[0] if names else os.uname().nodename


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    cell = spec["cells"][int(os.environ.get("SLURM_ARRAY_TASK_ID") or 0)]
    restarted = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    argv = cell["resume_argv"] if restarted else cell["argv"]
    if any(HEAD_NODE in a for a in argv):
        head = _head_node()
        argv = [a.replace(HEAD_NODE, head) for a in argv]
    alone = argv[0] != "srun"
    stale = [cell["rc"]] + ([os.path.join(cell["run_dir"], "stop_requested")] if cell.get("run_dir") else [])
    for path in stale:  # an earlier attempt's exit code and stop request are not this one's
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    print(f"=== Slurm job {os.environ.get('SLURM_JOB_ID')} on {os.uname().nodename}"
          f"{' (restarted)' if restarted else ''}: {' '.join(argv)}", flush=True)
    child = subprocess.Popen(argv, start_new_session=True)

    asked = []

    def stop_at_epoch_end(signum, frame):
        asked.append(signum)
        if cell.get("run_dir"):
            from part.runs import RunDir

            RunDir(cell["run_dir"]).request_stop("the Slurm job's time limit is near")

    def forward(signum, frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGUSR1, stop_at_epoch_end)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
    rc = 128 - rc if rc < 0 else rc  # killed by a signal: the shell's convention
    if asked and rc != 0 and not alone and cell.get("run_dir"):
        rc = STOPPED_FOR_LIMIT  # torchrun reports its workers' stop as a failure of its own
    with open(cell["rc"] + ".tmp", "w") as f:
        f.write(f"{rc}\n")
    os.replace(cell["rc"] + ".tmp", cell["rc"])
    if rc == STOPPED_FOR_LIMIT and spec.get("requeue"):
        print("=== stopped for the time limit; requeueing", flush=True)
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID", "")
        subprocess.run(["scontrol", "requeue", job])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
