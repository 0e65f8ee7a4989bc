"""A real single-node Slurm for tests: munged, slurmctld and slurmd started from a throwaway config.

Everything (config, state, spool, logs, munge key and socket, ports) is private to one instance, so it
neither needs nor disturbs a Slurm or munged already running on the machine, and all traffic stays on
127.0.0.1. Clients find the instance through ``SLURM_CONF`` (the munge socket is named in the config).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "sacct", "scontrol")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])


class SlurmUnavailable(Exception):
    """Slurm cannot run here (no root, packages missing, daemons do not come up); the message says why."""


@dataclass
class SlurmInstance:
    """What a test needs to use the running Slurm."""

    conf: Path
    log_dir: Path  # for worker logs: pass as job-resources "log_directory"
    hostname: str
    cpus: int
    mem_mb: int
    env: dict[str, str] = field(repr=False)  # os.environ plus SLURM_CONF, for subprocesses

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a Slurm client command (sbatch, squeue, sacct ...) against this instance."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("no MemTotal in /proc/meminfo")


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (a killed pytest leaves no daemons)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"--- {path.name}: (no log)"
    return f"--- {path.name}:\n" + "\n".join(text)


class LocalSlurm:
    """Start and stop one single-node Slurm whose files all live below ``root``."""

    def __init__(self, root: Path, timeout: float = 60):
        self.root = Path(root)
        self.timeout = timeout
        self.processes: dict[str, subprocess.Popen] = {}
        self.instance: SlurmInstance | None = None
        self.socket_dir: Path | None = None

    def start(self) -> SlurmInstance:
        if os.geteuid() != 0:
            raise SlurmUnavailable("Slurm fixture needs root (SlurmUser=root, slurmd runs jobs as root)")
        for name in DAEMONS + CLIENTS:
            if shutil.which(name, path=SEARCH_PATH) is None:
                raise SlurmUnavailable(f"{name} not installed: run scripts/setup.sh (apt packages slurm-wlm, munge)")
        kill_orphaned_jobs()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.instance

    def _start(self) -> None:
        root = self.root
        for sub in ("state", "spool", "log", "workers", "munge"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "munge").chmod(0o700)
        # munged wants its socket directory (and every parent) traversable by all, which pytest's
        # 0700 basetemp is not: the socket gets a short directory of its own under /tmp.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="napari-wkw-munge-"))
        self.socket_dir.chmod(0o755)
        munge_socket = self.socket_dir / "munge.socket"

        hostname = socket.gethostname().split(".")[0]
        cpus = len(os.sched_getaffinity(0))  # the cores we may use (slurmd drains a node claiming more)
        total_mb = memory_mb()
        mem_mb = total_mb - max(512, total_mb // 10)  # slurmd drains a node that claims more than it has
        conf = root / "slurm.conf"
        conf.write_text(
            SLURM_CONF.format(
                root=root,
                host=hostname,
                ctld_port=free_port(),
                slurmd_port=free_port(),
                munge_socket=munge_socket,
                cpus=cpus,
                mem_mb=mem_mb,
                def_mem=min(1024, mem_mb // cpus),
            )
        )
        env = {**os.environ, "SLURM_CONF": str(conf), "PATH": SEARCH_PATH}
        self.instance = SlurmInstance(conf, root / "workers", hostname, cpus, mem_mb, env)

        key = root / "munge" / "munge.key"
        subprocess.run(["mungekey", "-c", "-f", "-b", "1024", "-k", str(key)], env=env, check=True, capture_output=True)
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                "munged",
                "-F",
                "-S",
                str(munge_socket),
                f"--key-file={key}",
                f"--pid-file={self.socket_dir / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'seed'}",
            ],
        )
        self._wait(lambda: munge_socket.exists(), "munged did not create its socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(conf), "-N", hostname])
        self._wait(
            lambda: self.instance.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle",
            "the node did not become idle",
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - lives as long as the daemon
        self.processes[name] = subprocess.Popen(
            argv,
            env=self.instance.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in pytest does not hit the daemons before teardown
            preexec_fn=die_with_parent,
        )
        out.close()

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with {process.returncode}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"{what} within {self.timeout:.0f} s\n{self.logs()}")

    def logs(self) -> str:
        log = self.root / "log"
        names = [f"{name}.out" for name in self.processes] + ["slurmctld.log", "slurmd.log"]
        return "\n".join(tail(log / name) for name in names)

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons (terminate, then kill) and leave no job process behind."""
        if self.instance is not None and self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            jobs = self.instance.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            if jobs:
                self.instance.run("scancel", *jobs, check=False)
                deadline = time.monotonic() + 20
                while (
                    time.monotonic() < deadline
                    and self.instance.run("squeue", "-h", "-o", "%i", check=False).stdout.strip()
                ):
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._kill_strays()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None

    def _kill_strays(self) -> None:
        """Kill job processes (slurmstepd and what it started) left behind by this instance."""
        if self.instance is not None:
            for pid in job_processes().get(str(self.instance.conf), []):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def processes() -> dict[int, tuple[int, str, str | None]]:
    """pid -> (parent pid, command name, SLURM_CONF in its environment) for every readable process."""
    table = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        conf = next((e[len(b"SLURM_CONF=") :].decode() for e in environ if e.startswith(b"SLURM_CONF=")), None)
        table[int(proc.name)] = (ppid, comm, conf)
    return table


def job_processes() -> dict[str, list[int]]:
    """SLURM_CONF -> pids of processes that are a slurmstepd or below one (never the test process's own children)."""
    table = processes()
    jobs: dict[str, list[int]] = {}
    for pid, (_, _, conf) in table.items():
        ancestor, seen = pid, set()
        while conf and ancestor in table and ancestor not in seen:
            seen.add(ancestor)
            if table[ancestor][1] == "slurmstepd":
                jobs.setdefault(conf, []).append(pid)
                break
            ancestor = table[ancestor][0]
    return jobs


def kill_orphaned_jobs() -> None:
    """Kill job processes of earlier fixture instances whose daemons are gone (a killed test run)."""
    table = processes()
    alive = {conf for _, comm, conf in table.values() if comm in ("slurmctld", "slurmd", "munged")}
    for conf, pids in job_processes().items():
        try:
            ours = Path(conf).read_text().startswith(HEADER)
        except OSError:
            continue
        if ours and conf not in alive:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


HEADER = "# Written by tests/jobs/slurm_fixture.py"
SLURM_CONF = (
    HEADER
    + """: one node, everything below {root}
ClusterName=napariwkw
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/state/slurmctld.pid
SlurmdPidFile={root}/spool/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={def_mem}
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MinJobAge=600
KillWait=5
InactiveLimit=0
MailProg=/bin/true
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
)
