"""cnn_depth/reporting.py: the lines a run prints besides its progress (resuming, compiling, the
final metrics) and the diverged message with and without a checkpoint to fall back to."""

from __future__ import annotations

import json

from helpers.training import tiny_config

from cnn_depth import reporting


def test_a_resumed_run_says_from_which_step_and_the_compile_is_announced(tmp_path, capsys):
  log = reporting.RunLog(str(tmp_path), tiny_config(), total=40, steps_per_epoch=46, start=35)
  log.compiling("Plain-8")
  log.close()
  out = capsys.readouterr().out.splitlines()
  assert out == [
    f"resuming {tmp_path} from step 35 of 40",
    "compiling the train step of Plain-8 (first step; takes a while on CPU)...",
  ]


def test_diverged_says_whether_a_checkpoint_is_kept(tmp_path):
  log = reporting.RunLog(str(tmp_path), tiny_config(checkpoint_every_steps=5), 40, 46, 0)
  try:
    none = log.diverged(3, {"loss": float("nan")}, None)
    kept = log.diverged(7, {"loss": float("inf")}, 5)
  finally:
    log.close()
  assert "no checkpoint was written yet (the first was due at step 5)" in none
  assert "step None" not in none and "\n" not in none
  assert f"the last good checkpoint (step 5) is kept in {tmp_path}/checkpoints" in kept
  status = json.loads((tmp_path / "status.json").read_text())
  assert status["status"] == "diverged" and status["last_checkpoint"] == 5


def test_the_final_metrics_are_one_readable_line():
  final = {
    "steps": 60,
    "epochs": 1.304,
    "train_loss": 0.41234,
    "train_error": 0.123,
    "test_error": 0.145,
    "timed_steps": 59,
    "timed_seconds": 5.9,
  }
  assert reporting.final_line(final, batch_size=128) == (
    "done: step 60 (1.3 epochs), train loss 0.4123, train error 12.30%, test error 14.50%, "
    "1,280 images/s (evaluations included)"
  )
  assert reporting.final_line({"steps": 2, "epochs": 0.04}, 32) == "done: step 2 (0.04 epochs)"
