"""TensorBoard event files (cnn_depth/events.py), read back with TensorBoard's own reader and held
against metrics.jsonl: every scalar with the same steps and values (float32) in the same order, the
block-norm histograms, a resumed run without duplicate or orphaned points, a diverged run's writer
closed.

The runs are tests/test_train.py's tiny quickstart (helpers/training.py: plain-8 at width 4 on the
embedded digits), in this process: 10 steps with a checkpoint every 4, then a copy of its workdir as
a run killed between the checkpoints at 8 and 10 and relaunched for 12 steps. The reader is opened
with `purge_orphaned_data=False`, so it hides nothing: what it returns is what the files hold.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.training import DIVERGENT, read_metrics, tiny_config
from tensorboard.backend.event_processing import event_accumulator, plugin_event_multiplexer

from cnn_depth import events, train

RUN = {
  "num_train_steps": 10,
  "eval_every_steps": 5,
  "checkpoint_every_steps": 4,
  "keep_checkpoints": 3,
  "eval_train_set": True,
  "log_block_norms": True,
}
TRAINING_TAGS = ("epoch", "lr", "train_loss", "train_error", "images_per_sec", "grad_norm")
EVAL_TAGS = ("test_loss", "test_error", "train_eval_loss", "train_eval_error")
BLOCK_TAGS = ("block_grad_norms", "block_param_norms")


def load_events(workdir) -> event_accumulator.EventAccumulator:
  """All points of the workdir's event files, none dropped or hidden by the reader."""
  everything = {event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0}
  return event_accumulator.EventAccumulator(
    str(workdir), size_guidance=everything, purge_orphaned_data=False
  ).Reload()


def expected_scalars(records) -> dict[str, list[tuple[int, float]]]:
  """Tag -> [(step, value)] as metrics.jsonl gives them: a list's entries under `key/NNN`."""
  series = collections.defaultdict(list)
  for r in records:
    for key, value in r.items():
      if key == "step":
        continue
      entries = enumerate(value) if isinstance(value, list) else [(None, value)]
      for i, v in entries:
        series[key if i is None else f"{key}/{i:03d}"].append((r["step"], v))
  return series


def assert_events_equal_metrics(workdir) -> event_accumulator.EventAccumulator:
  """One event file whose scalars are metrics.jsonl's numbers: same tags, steps, order, values."""
  assert len(events.event_files(workdir)) == 1, os.listdir(workdir)
  acc, records = load_events(workdir), read_metrics(workdir)
  expected = expected_scalars(records)
  assert sorted(acc.Tags()["scalars"]) == sorted(expected)
  with np.errstate(over="ignore"):  # a diverging loss may pass float32's range: inf both ways
    for tag, points in expected.items():
      got = acc.Scalars(tag)
      assert [e.step for e in got] == [s for s, _ in points], tag
      np.testing.assert_array_equal(
        np.float32([e.value for e in got]), np.float32([v for _, v in points]), err_msg=tag
      )
  return acc


def open_event_files() -> list[str]:
  """The event files this process holds open (Linux: /proc/self/fd)."""
  fds = Path("/proc/self/fd")
  if not fds.is_dir():
    pytest.skip("needs /proc/self/fd to list open files")
  links = []
  for fd in fds.iterdir():
    try:
      links.append(os.readlink(fd))
    except OSError:  # the listing's own descriptor, closed by now
      pass
  return [link for link in links if events.EVENTS_PREFIX in link]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(an uninterrupted 10-step run, its copy killed after step 10 and relaunched for 12 steps)."""
  logdir = tmp_path_factory.mktemp("runs")
  first, resumed = logdir / "first", logdir / "sweep" / "resumed"
  train.train_and_evaluate(tiny_config(**RUN), str(first))
  shutil.copytree(first, resumed)
  # Killed before the checkpoint at step 10 was committed: metrics.jsonl and the events hold steps
  # 9 and 10 that the relaunch runs again from step 8. The kill also tore the last event record.
  shutil.rmtree(resumed / "checkpoints" / "10")
  (events_file,) = events.event_files(resumed)
  os.truncate(events_file, os.path.getsize(events_file) - 7)
  train.train_and_evaluate(tiny_config(**{**RUN, "num_train_steps": 12}), str(resumed))
  return first, resumed


def test_every_metric_is_a_scalar_with_the_same_steps_and_values(runs):
  first, _ = runs
  acc = assert_events_equal_metrics(first)
  tags = set(acc.Tags()["scalars"])
  assert set(TRAINING_TAGS + EVAL_TAGS + ("param_norm",)) <= tags
  assert [e.step for e in acc.Scalars("train_loss")] == list(range(1, 11))
  assert [e.step for e in acc.Scalars("test_error")] == [5, 10]
  assert "tensorflow" not in sys.modules and "torch" not in sys.modules


def test_block_norms_are_histograms_over_the_blocks(runs):
  first, _ = runs
  acc, records = load_events(first), read_metrics(first)
  assert sorted(acc.Tags()["histograms"]) == sorted(BLOCK_TAGS)
  for tag in BLOCK_TAGS:
    histograms = acc.Histograms(tag)
    assert [h.step for h in histograms] == [r["step"] for r in records]
    for h, r in zip(histograms, records):
      values, hist = r[tag], h.histogram_value
      assert len(values) == 3  # plain-8: 3 stages of one block
      assert hist.num == len(values) and sum(hist.bucket) == len(values)
      assert (hist.min, hist.max) == (min(values), max(values))
      assert hist.sum == pytest.approx(sum(values), rel=1e-12)
      assert hist.sum_squares == pytest.approx(sum(v * v for v in values), rel=1e-12)


def test_a_resumed_run_holds_each_step_once(runs):
  first, resumed = runs
  records = read_metrics(resumed)
  assert [r["step"] for r in records] == list(range(1, 13))
  acc = assert_events_equal_metrics(resumed)  # one file, each step once and in order
  for tag in BLOCK_TAGS:
    assert [h.step for h in acc.Histograms(tag)] == list(range(1, 13))
  # Steps 1-8 replayed from the first run, 9 and 10 run again to the same numbers (exact resume).
  again = {e.step: e.value for e in acc.Scalars("train_loss")}
  assert all(again[e.step] == e.value for e in load_events(first).Scalars("train_loss"))


def test_tensorboard_names_each_run_by_its_workdir(runs):
  first, resumed = runs
  logdir = first.parent  # what `tensorboard --logdir` shows: runs/first and runs/sweep/resumed
  found = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(logdir)).Runs()
  assert sorted(found) == ["first", "sweep/resumed"]


def test_a_diverged_run_leaves_its_events_flushed_and_closed(tmp_path):
  with pytest.raises(train.TrainingDiverged) as raised:
    train.train_and_evaluate(tiny_config(**DIVERGENT), str(tmp_path))
  # The traceback keeps the run's frames, and so its RunLog, alive: the file is closed, not
  # collected.
  assert raised.tb is not None and not open_event_files()
  assert read_metrics(tmp_path)
  assert_events_equal_metrics(tmp_path)


def test_non_finite_values_are_scalars_and_stay_out_of_histograms(tmp_path):
  inf, nan = math.inf, math.nan
  with events.EventWriter(tmp_path) as writer:
    writer.write(1, {"train_loss": nan, "block_grad_norms": [inf, 2.0, nan], "note": "text"})
    writer.write(2, {"block_grad_norms": [nan]})  # no finite entry: no histogram at all
    acc = load_events(tmp_path)  # flushed at each write: readable while the run goes on
  assert math.isnan(acc.Scalars("train_loss")[0].value)
  first_block = [e.value for e in acc.Scalars("block_grad_norms/000")]
  assert first_block[0] == inf and math.isnan(first_block[1])
  (hist,) = acc.Histograms("block_grad_norms")
  assert hist.step == 1 and hist.histogram_value.num == 1 and hist.histogram_value.max == 2.0
  assert "note" not in acc.Tags()["scalars"]
  # A new writer starts the run over from the records it replays (the old file is deleted).
  with events.EventWriter(tmp_path, replay=[{"step": 1, "lr": 0.1}]):
    pass
  acc = load_events(tmp_path)
  assert len(events.event_files(tmp_path)) == 1 and acc.Tags()["scalars"] == ["lr"]
