"""A real single-node SLURM cluster on 127.0.0.1 for the tests: munged, slurmctld and slurmd from
Debian's packages, run from a private directory (nothing in /etc/slurm, nothing left running).

    with SlurmCluster(tmp_dir) as cluster:     # ~5-10 s from nothing to an idle node
      subprocess.run(["sbatch", ...], env=cluster.env)

`cluster.env` is os.environ plus `SLURM_CONF` (every SLURM command and every job reads it) and a
`PATH` whose first entry holds an `sacct` stand-in: this cluster keeps no accounting, and submitit
asks `sacct` for job states (without an answer a job killed hard makes it wait forever).

`ensure_installed()` installs the packages with apt-get (root only) when they are missing, as the
test set-up; it returns why SLURM cannot run here, or None. Measured on Debian 12 (Slurm 22.05.8):
the 8 packages install in ~6-10 s and start no services by themselves; every daemon runs from a
private root (`SLURM_CONF`, munged with its own socket and key), and the node is idle in ~5 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = {
  "munged": "/usr/sbin/munged",
  "slurmctld": "/usr/sbin/slurmctld",
  "slurmd": "/usr/sbin/slurmd",
}

# Answers `sacct -j ID ... -o JobID,State,NodeList --parsable2` from squeue, which still lists jobs
# for MinJobAge seconds after they end.
SACCT = """#!/bin/sh
ids=$(echo "$@" | sed -n 's/.*-j *\\([^ ]*\\).*/\\1/p')
echo "JobID|State|NodeList"
squeue --states=all -h -j "$ids" -o "%i|%T|%N" 2>/dev/null
"""


def _missing() -> list[str]:
  return [name for name, path in DAEMONS.items() if not os.path.exists(path)] + [
    cmd for cmd in ("sbatch", "srun", "squeue", "scontrol") if shutil.which(cmd) is None
  ]


def ensure_installed() -> str | None:
  """Installs SLURM and munge with apt-get where they are missing; the reason they cannot run
  here, or None."""
  if not _missing():
    return None
  if os.geteuid() != 0 or shutil.which("apt-get") is None:
    return f"SLURM is not installed ({', '.join(_missing())} missing) and apt-get needs root"
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  if out.returncode != 0:  # a stale package index: update once and retry
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  if out.returncode != 0 or _missing():
    tail = " ".join(out.stderr.strip().splitlines()[-2:])
    return f"apt-get could not install {' '.join(PACKAGES)} ({tail})"
  return None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _slurm_conf(root: str, munge_socket: str) -> str:
  cpus = os.cpu_count() or 1
  with open("/proc/meminfo") as f:
    mem_mb = int(f.readline().split()[1]) // 1024
  return f"""ClusterName=cnn-depth-test
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=bf_interval=1,sched_interval=1
MinJobAge=600
KillWait=30
ReturnToService=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={int(mem_mb * 0.8)} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
  """munged + slurmctld + slurmd under `root`, started on enter and stopped on exit."""

  def __init__(self, root: str):
    self.root = os.path.abspath(root)
    self.procs: list[subprocess.Popen] = []
    self.env = dict(os.environ)

  def __enter__(self) -> "SlurmCluster":
    try:
      self._start()
    except BaseException:
      self.__exit__()
      raise
    return self

  def _start(self) -> None:
    r = self.root
    for sub in ("state", "spool", "munge", "bin"):
      os.makedirs(os.path.join(r, sub), exist_ok=True)
    os.chmod(os.path.join(r, "munge"), 0o700)
    key, sock = os.path.join(r, "munge", "munge.key"), os.path.join(r, "munge", "munge.socket")
    with open(key, "wb") as f:
      f.write(os.urandom(1024))
    os.chmod(key, 0o400)
    conf = os.path.join(r, "slurm.conf")
    with open(conf, "w") as f:
      f.write(_slurm_conf(r, sock))
    sacct = os.path.join(r, "bin", "sacct")
    with open(sacct, "w") as f:
      f.write(SACCT)
    os.chmod(sacct, 0o755)
    self.env.update(SLURM_CONF=conf, PATH=f"{r}/bin:{os.environ.get('PATH', '')}")
    self._daemon(
      DAEMONS["munged"], "-F", "--force", f"--socket={sock}", f"--key-file={key}",
      f"--pid-file={r}/munge/munged.pid", f"--seed-file={r}/munge/munged.seed",
      f"--log-file={r}/munge/munged.log",
    )  # fmt: skip
    self._wait(lambda: os.path.exists(sock), "munged's socket")
    self._daemon(DAEMONS["slurmctld"], "-D", "-i")
    self._wait(lambda: self._ok("scontrol", "ping"), "slurmctld")
    self._daemon(DAEMONS["slurmd"], "-D", "-N", "localhost")
    self._wait(self._idle, "the node to be idle")

  def _daemon(self, *cmd: str) -> None:
    log = open(os.path.join(self.root, os.path.basename(cmd[0]) + ".out"), "w")
    self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT))

  def _ok(self, *cmd: str) -> bool:
    return subprocess.run(cmd, env=self.env, capture_output=True, timeout=30).returncode == 0

  def _idle(self) -> bool:
    out = subprocess.run(
      ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip() == "idle"

  def _wait(self, ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
      dead = [p.args[0] for p in self.procs if p.poll() is not None]
      if dead or time.monotonic() > deadline:
        raise RuntimeError(f"SLURM test cluster: no {what} ({dead or 'timeout'}); {self.logs()}")
      time.sleep(0.1)

  def logs(self) -> str:
    out = []
    for name in ("slurmctld.log", "slurmd.log", "munged.out", "slurmctld.out", "slurmd.out"):
      path = os.path.join(self.root, name)
      if os.path.exists(path):
        with open(path) as f:
          out.append(f"--- {name}\n" + "".join(f.readlines()[-15:]))
    return "\n".join(out)

  def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)

  def __exit__(self, *exc) -> None:
    if self.procs:
      subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
    for p in reversed(self.procs):
      p.terminate()
    for p in reversed(self.procs):
      try:
        p.wait(timeout=15)
      except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    self.procs = []
