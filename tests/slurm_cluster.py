"""A throw-away single-node SLURM cluster on localhost, for tests that submit real jobs.

Starts its own munged (fresh key, socket in a temporary directory), slurmctld and slurmd, all in the foreground
as children of this process, so that each one is stopped by its own PID. Nothing else on the machine is touched
except /etc/slurm/slurm.conf, which SLURM's client tools and the job-step plugin's inner `srun` read (the
plugin removes SLURM_CONF from the job's environment): an existing file is moved aside and put back on stop.

    with LocalSlurm(tmp_path) as cluster:
        cluster.partition, cluster.cpus, cluster.mem_mb

Needs root (slurmd runs jobs as their submitting user) and Debian's slurm-wlm + munge (.ci/install_slurm.sh).
Accounting is off (accounting_storage/none): `sacct` fails there, so job status must come from squeue.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
BACKUP = SLURM_CONF.with_name("slurm.conf.trusttrace-backup")
MARKER = "# Written by TrustTrace tests/slurm_cluster.py for a temporary test cluster; removed when it stops."
LOCK_FILE = Path("/tmp/trusttrace-slurm-test.lock")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "srun", "scontrol", "sinfo", "scancel")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
PARTITION = "debug"


def find(binary: str) -> str | None:
    """A binary on PATH or in the sbin directories (which a non-login PATH may lack)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(binary, path=search)


def running_processes(names) -> list[tuple[int, str]]:
    """(pid, name) of every process on this machine whose command name is one of `names`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            found.append((int(entry.name), comm))
    return found


def skip_reason() -> str | None:
    """Why a local SLURM cannot be started here, or None when it can."""
    missing = [name for name in DAEMONS + CLIENTS if find(name) is None]
    if missing:
        return (
            f"SLURM/munge binaries missing: {', '.join(missing)} "
            "(install with .ci/install_slurm.sh: apt-get install slurm-wlm munge)"
        )
    if os.geteuid() != 0:
        return "a local SLURM test cluster needs root (slurmd, /etc/slurm/slurm.conf)"
    live = [f"{name} (pid {pid})" for pid, name in running_processes(("slurmctld", "slurmd", "slurmdbd"))]
    if live:
        return f"SLURM daemons already run on this machine ({', '.join(live)}); not touching a live cluster"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def detected_node() -> dict[str, int]:
    """CPU topology and memory as slurmd itself detects them (`slurmd -C`), so the node registers as idle."""
    out = subprocess.run([find("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {key: int(fields[key]) for key in keys}


def wait_until(condition, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {log}:\n{tail(log)}" for log in logs)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def tail(path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalSlurm:
    """munged + slurmctld + slurmd on localhost, one partition ``debug`` with one node (this machine)."""

    def __init__(self, root: Path, lock_timeout: float = 900.0):
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self.node = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self.processes: dict[str, subprocess.Popen] = {}
        self.startup_seconds: float | None = None
        self._lock = None
        self._conf_written = False
        self._stepds_before: set[int] | None = None
        self.cpus = 0
        self.mem_mb = 0
        # munged wants every directory above its socket searchable by all (pytest's tmp dirs are 0700), and a
        # unix socket path has to stay short: its own directory under /tmp, removed on stop.
        self.munge_dir: Path | None = None

    # -- context manager: stop() runs whatever happened in between (and if start() itself failed half way) --
    def __enter__(self) -> LocalSlurm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket.2"

    def _acquire_lock(self):
        """One test cluster per machine at a time (/etc/slurm/slurm.conf is shared)."""
        self._lock = open(LOCK_FILE, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test holds {LOCK_FILE} for over {self.lock_timeout:.0f} s") from None
                time.sleep(1)

    def _install_conf(self, text: str):
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SLURM_CONF.exists():
            if MARKER in SLURM_CONF.read_text(errors="replace"):
                SLURM_CONF.unlink()  # left behind by a test run that was killed; a backup, if any, stays
            elif BACKUP.exists():
                raise RuntimeError(f"{SLURM_CONF} and {BACKUP} both exist; restore the right one by hand first")
            else:
                SLURM_CONF.rename(BACKUP)
        SLURM_CONF.write_text(text)
        self._conf_written = True

    def _restore_conf(self):
        if not self._conf_written:
            return
        if SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text(errors="replace"):
            SLURM_CONF.unlink()
        if BACKUP.exists() and not SLURM_CONF.exists():
            BACKUP.rename(SLURM_CONF)
        self._conf_written = False

    def slurm_conf(self, slurmctld_port: int, slurmd_port: int, node: dict[str, int]) -> str:
        r = self.root
        topology = " ".join(
            f"{key}={node[key]}" for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        )
        return f"""{MARKER}
ClusterName=trusttrace-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={slurmctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "run" / "slurmctld.pid"}
SlurmdPidFile={r / "run" / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
NodeName={self.node} NodeAddr=127.0.0.1 {topology} RealMemory={self.mem_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""

    def _spawn(self, name: str, argv: list[str]):
        log = open(self.root / "log" / f"{name}.out", "w")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()

    def _node_idle(self) -> bool:
        out = subprocess.run(
            [find("sinfo"), "-h", "-n", self.node, "-o", "%T"], capture_output=True, text=True, timeout=10
        ).stdout
        return out.strip() == "idle"

    def _check_alive(self):
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{tail(self.root / 'log' / f'{name}.out')}\n"
                    f"{tail(self.root / 'log' / f'{name}.log')}"
                )

    def start(self):
        reason = skip_reason()
        if reason:
            raise RuntimeError(reason)
        self._acquire_lock()
        self._stepds_before = {pid for pid, _ in running_processes(("slurmstepd",))}
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "spool", "run", "log"):
            (self.root / sub).mkdir(exist_ok=True)
        self.munge_dir = Path(tempfile.mkdtemp(prefix="trusttrace-munge-", dir="/tmp"))
        os.chmod(self.munge_dir, 0o755)  # munged refuses a socket directory that others can write to

        node = detected_node()
        self.cpus = node["CPUs"]
        # Leave head room for the test's own local run and the daemons; jobs are capped to this (--resources).
        self.mem_mb = max(1000, int(node["RealMemory"] * 0.8))

        munge_dir = self.munge_dir
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._spawn(
            "munged",
            [
                find("munged"),
                "--foreground",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
                "--num-threads=2",
            ],
        )
        wait_until(
            lambda: self._check_alive() or self.munge_socket.exists(),
            15,
            "munged's socket",
            [self.root / "log" / "munged.out", munge_dir / "munged.log"],
        )

        slurmctld_port = free_port()
        slurmd_port = free_port()
        while slurmd_port == slurmctld_port:
            slurmd_port = free_port()
        self._install_conf(self.slurm_conf(slurmctld_port, slurmd_port, node))
        self._spawn("slurmctld", [find("slurmctld"), "-D", "-c", "-f", str(SLURM_CONF)])
        self._spawn("slurmd", [find("slurmd"), "-D", "-N", self.node, "-f", str(SLURM_CONF)])
        wait_until(
            lambda: self._check_alive() or self._node_idle(),
            60,
            f"node {self.node} to be idle",
            [self.root / "log" / name for name in ("slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log")],
        )
        self.startup_seconds = time.monotonic() - started

    def _our_stepds(self) -> list[int]:
        if self._stepds_before is None:
            return []
        return [pid for pid, _ in running_processes(("slurmstepd",)) if pid not in self._stepds_before]

    def job_ids(self) -> list[str]:
        out = subprocess.run(
            [find("squeue"), "-h", "--states=all", "-o", "%i"], capture_output=True, text=True, timeout=30
        ).stdout
        return out.split()

    def stop(self):
        """Cancel every job of this private controller, stop the daemons by PID, put slurm.conf back."""
        try:
            if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
                subprocess.run(
                    [find("scancel"), "--full", "--user", getpass.getuser()], capture_output=True, timeout=30
                )
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and running_jobs_left():
                    time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
            # The daemon ran in a session of its own (start_new_session): anything it forked and left behind
            # (slurmctld's slurmscriptd) is in that process group.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.processes.clear()
        # slurmstepd (forked by our slurmd, one per job step) outlives a cancelled job by a second or two.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self._our_stepds():
            time.sleep(0.2)
        for pid in self._our_stepds():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._restore_conf()
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)
            self.munge_dir = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def running_jobs_left() -> bool:
    out = subprocess.run(
        [find("squeue"), "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return bool(out.strip())
