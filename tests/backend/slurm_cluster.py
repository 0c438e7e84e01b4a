"""A real single-node Slurm cluster in a temporary folder: munged, slurmctld and slurmd as root.

Debian's slurm-wlm and munge (`make sysdeps`) provide the daemons; the config, keys, sockets, state
and logs live in the folder, the ports are free ones, and every daemon is stopped by its pid. The
Slurm client commands find the cluster through SLURM_CONF, the usual way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
PARTITION = "debug"


def missing() -> str | None:
    """Why no cluster can start here, or None."""
    absent = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)} missing; `make sysdeps` installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs for the test user"
    return None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    def __init__(self, folder: Path, cpus: int = 2):
        self.folder = Path(folder)
        self.cpus = cpus
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: list[int] = []

    def _write(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        os.chmod(f / "munge", 0o700)
        ctld, slurmd = _free_ports(2)
        host = socket.gethostname()
        memory = 1024
        self.conf.write_text("\n".join([
            "ClusterName=partstudio", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctld}", f"SlurmdPort={slurmd}",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
            f"AuthInfo=socket={f / 'munge' / 'munge.socket'}",
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}", f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "SchedulerType=sched/backfill", "MpiDefault=none", "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "KillWait=5", "MinJobAge=300",
            "SchedulerParameters=sched_interval=2", "JobRequeue=1",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))

    def _start(self, argv: list[str], pid_file: Path) -> None:
        subprocess.run(argv, env=self.env, check=True, stdin=subprocess.DEVNULL, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.time() > deadline:
                raise RuntimeError(f"{argv[0]} wrote no pid file {pid_file}")
            time.sleep(0.1)
        self.pids.append(int(pid_file.read_text().strip()))

    def start(self) -> "SlurmCluster":
        self._write()
        f = self.folder
        self._start([_binary("munged"), "--force", f"--socket={f / 'munge' / 'munge.socket'}",
                     f"--key-file={f / 'munge' / 'munge.key'}", f"--pid-file={f / 'munge' / 'munged.pid'}",
                     f"--log-file={f / 'munge' / 'munged.log'}", f"--seed-file={f / 'munge' / 'munged.seed'}"],
                    f / "munge" / "munged.pid")
        self._start([_binary("slurmctld"), "-f", str(self.conf)], f / "slurmctld.pid")
        self._start([_binary("slurmd"), "-f", str(self.conf)], f / "slurmd.pid")
        self.wait_idle()
        return self

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            state = out.stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Slurm node stayed '{state}'; see {self.folder}/slurmd.log and slurmctld.log")

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()
