"""cnn_depth/launchers.py's local launcher: N runs at a time, each pinned to its own GPU or its own
CPUs, never more runs than cores (the SLURM launcher on a real cluster:
tests/scripts/test_sweep_slurm.py)."""

import json
import os
import sys

import pytest

from cnn_depth import launchers
from cnn_depth import sweep as sweep_lib


def _probe(path) -> tuple[str, ...]:
  """A command that records when it ran, where (GPUs, CPUs), and sleeps a moment."""
  code = (
    "import json, os, sys, time; t = time.time(); time.sleep(0.6); "
    "json.dump({'start': t, 'end': time.time(), 'gpus': os.environ.get('CUDA_VISIBLE_DEVICES'), "
    f"'cpus': sorted(os.sched_getaffinity(0))}}, open({str(path)!r}, 'w'))"
  )
  return (sys.executable, "-c", code)


@pytest.mark.parametrize("gpus", [None, "0,1"])
def test_local_launcher_runs_n_at_once_each_on_its_own_devices(tmp_path, monkeypatch, gpus):
  if gpus is None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if launchers.visible_gpus():
      pytest.skip("a GPU host: the CPU split is not used here")
  else:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
  slots = launchers.local_slots(2)
  runs = [sweep_lib.Run(f"r{i}", str(tmp_path / f"r{i}"), _probe(tmp_path / f"r{i}.json"))
          for i in range(3)]  # fmt: skip
  assert launchers.run_local(runs, str(tmp_path), slots, say=lambda line: None)
  seen = [json.load(open(tmp_path / f"r{i}.json")) for i in range(3)]
  for run, probe in zip(runs, seen):
    record = sweep_lib.read_record(str(tmp_path), run.name)
    assert record["exit_code"] == 0 and record["launcher"] == "local"
    slot = next(s for s in slots if s.label == record["slot"])
    if gpus:
      assert probe["gpus"] == slot.env["CUDA_VISIBLE_DEVICES"] and probe["gpus"] in ("0", "1")
    else:
      assert probe["cpus"] == sorted(slot.cpus) and len(slots[0].cpus & slots[1].cpus) == 0
  # Two at a time: the first two overlap, the third starts after one of them ended.
  assert seen[0]["start"] < seen[1]["end"] and seen[1]["start"] < seen[0]["end"]
  assert seen[2]["start"] >= min(seen[0]["end"], seen[1]["end"])
  with open(tmp_path / "sweep" / "r2.log") as f:  # with 2 slots each run writes its own log
    assert f.read() == ""


def test_more_runs_than_cores_is_refused_not_pinned_two_to_a_core(monkeypatch):
  """On a CPU host each slot gets cores of its own; a --parallel above the cores this process may
  use is one sentence naming --parallel and the core count (it used to pin two runs to CPU 0)."""
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible: the CPU split
  cpus = sorted(os.sched_getaffinity(0))
  slots = launchers.local_slots(len(cpus))
  assert sorted(c for s in slots for c in s.cpus) == cpus  # every core in exactly one slot
  with pytest.raises(sweep_lib.SweepError) as e:
    launchers.local_slots(len(cpus) + 1)
  assert str(e.value) == (
    f"--parallel={len(cpus) + 1} is more than the {len(cpus)} CPU cores this process may use "
    f"({','.join(map(str, cpus))}); use --parallel={len(cpus)} or fewer, one core (or more) per "
    "run, and the other runs wait their turn"
  )
  with pytest.raises(sweep_lib.SweepError, match="--parallel must be at least 1, got 0"):
    launchers.local_slots(0)
