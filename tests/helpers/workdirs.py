"""Tiny trained workdirs made once per test run, shared by the analysis, study and script tests
(conftest.py's session fixtures): a ResNet-14 and its plain twin from configs/quickstart.py,
width 4, trained 6 steps on the embedded digits with a checkpoint at the end.

Once per run across pytest-xdist's workers too: they are made in a folder every worker of the run
sees (the parent of a worker's base temp), under a file lock; the first worker to get there trains,
the others wait for it and reuse what it made. Tests must not write into them: give a script
--out_dir in tmp_path, or copy the workdir first. What a run made is recorded beside it, and the
fixtures check at the end of the session that nothing in it changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

from helpers.runner import ROOT

# name -> configs/quickstart.py argument; with TINY below, what tests/scripts/ used to train each
# in its own module fixture.
TINY_RUNS = {
  "resnet14": "depth=14,residual=True,steps=6",
  "plain14": "depth=14,residual=False,steps=6",
}
TINY = {"model.width": 4, "batch_size": 32, "log_every_steps": 6, "eval_every_steps": 6}


def shared_dir(tmp_path_factory) -> Path:
  """A folder of this test run that every pytest-xdist worker of it sees (the base temp alone)."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # <run>/popen-gw0 -> <run>
  return base / "shared"


@contextlib.contextmanager
def _locked(path: str):
  with open(path, "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
    yield


def _manifest(folder: Path) -> dict:
  """Every file under `folder` with its size and modification time."""
  out = {}
  for dirpath, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(dirpath, name)
      stat = os.stat(path)
      out[os.path.relpath(path, folder)] = [stat.st_size, stat.st_mtime_ns]
  return out


def made_once(folder: Path, make) -> Path:
  """`make(folder)` once per test run: the first process to get here makes it, holding a lock the
  others wait on; they find it made. A folder left half-made (its maker killed) is made again."""
  folder.parent.mkdir(parents=True, exist_ok=True)
  done = Path(f"{folder}.done")
  with _locked(f"{folder}.lock"):
    if not done.exists():
      shutil.rmtree(folder, ignore_errors=True)
      make(folder)
      done.write_text(json.dumps(_manifest(folder)))
  return folder


def changed_files(folder: Path) -> list[str]:
  """The files under `folder` added, removed or rewritten since made_once made it."""
  made = json.loads(Path(f"{folder}.done").read_text())
  now = _manifest(folder)
  return sorted(name for name in made.keys() | now.keys() if made.get(name) != now.get(name))


def train_tiny_runs(folder: Path) -> None:
  """TINY_RUNS under `folder` (nothing else there: tests glob it and take it as a sweep root)."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  path = os.path.join(ROOT, "configs", "quickstart.py")
  for name, arg in TINY_RUNS.items():
    config = config_lib.load_config_file(f"{path}:{arg}")
    for dotted, value in TINY.items():
      *parents, leaf = dotted.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = value
    train.train_and_evaluate(config, str(folder / name))


def copy(workdir: str, into) -> str:
  """A copy of a shared workdir in `into` (a test's tmp_path), for a script that writes into it."""
  return shutil.copytree(workdir, os.path.join(into, os.path.basename(workdir)))
