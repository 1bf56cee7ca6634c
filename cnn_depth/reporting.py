"""What a run reports as it goes: metrics.jsonl records (mirrored into TensorBoard event files,
events.py), status.json, the progress line.

Every process of a run computes the same metrics; only process 0 writes them. Images/s leave out the
first (compiling) step and evaluations, and are reported only where a step was timed.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from cnn_depth import events as events_lib
from cnn_depth import workdir as workdir_lib
from cnn_depth.feeds import SUMMED


class _Clock:
  """Images/s over the steps since the last log, without the first (compiling) step and without
  evaluations; the wall time after the first step; the ETA from the mean time per step."""

  def __init__(self, batch_size: int, step: int, total: int):
    self.batch_size, self.first, self.step, self.total = batch_size, step, step, total
    self.start = self.since = time.perf_counter()
    self.steps, self.timed_since = 0, None

  def tick(self, last_metrics) -> None:
    self.step += 1
    self.steps += 1
    if self.step == self.first + 1:  # the first step compiles: keep it out of images/s
      jax.block_until_ready(last_metrics)
      self.timed_since = self.since = time.perf_counter()
      self.steps = 0

  def rate(self) -> float | None:
    """Images/s since the last call (None where no step was timed), restarting the count."""
    now = time.perf_counter()
    rate = self.steps * self.batch_size / (now - self.since) if self.steps else None
    self.steps, self.since = 0, now
    return rate

  def resume(self) -> None:
    self.since = time.perf_counter()

  def eta(self) -> str:
    seconds = (
      (time.perf_counter() - self.start) / max(self.step - self.first, 1) * (self.total - self.step)
    )
    seconds = int(max(seconds, 0))
    return (
      f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
      if seconds >= 3600
      else f"{seconds // 60}m{seconds % 60:02d}s"
    )

  def timed(self) -> dict:
    """timed_steps and timed_seconds: the steps after the first one, evaluation and logs
    included."""
    if self.step <= self.first + 1:
      return {}
    return {
      "timed_steps": self.step - self.first - 1,
      "timed_seconds": time.perf_counter() - self.timed_since,
    }


class RunLog:
  """What a run writes to its workdir and console. Every process computes the same metrics; only
  process 0 writes them (config.json, metrics.jsonl and its TensorBoard copy, status.json, the
  progress line)."""

  def __init__(self, workdir: str, config, total: int, steps_per_epoch: int, start: int):
    self.workdir, self.config, self.total = workdir, config, total
    self.steps_per_epoch = steps_per_epoch
    self.main = jax.process_index() == 0
    self.final: dict[str, Any] = {}
    self.clock = _Clock(config.batch_size, start, total)
    if self.main:  # lines a killed run wrote after its last checkpoint would be duplicated
      workdir_lib.truncate_metrics(workdir, start)
      if start == 0 or workdir_lib.read_config(workdir) is None:  # a resume keeps the first's
        workdir_lib.write_config(workdir, config.to_dict())
    self.status("running", step=start, total_steps=total)
    if self.main and start:
      print(f"resuming {workdir} from step {start} of {total}", flush=True)
    self._writer = self._events = None
    if self.main:  # the events replay the (truncated) metrics.jsonl: each step once, in order
      self._writer = workdir_lib.MetricsWriter(workdir)
      self._events = events_lib.EventWriter(workdir, replay=workdir_lib.read_metrics(workdir))

  def status(self, status: str, **info) -> None:
    if self.main:
      workdir_lib.write_status(self.workdir, status, **info)

  def train_record(self, step: int, sums: dict, last, lr: float) -> dict:
    """The training metrics of a logging step: errors since the last log, rate, norms."""
    diagnostics = jax.device_get({k: v for k, v in last.items() if k not in SUMMED})
    record: dict[str, Any] = {
      "epoch": step / self.steps_per_epoch,
      "lr": lr,
      "train_loss": sums["loss"],
      "train_error": sums["error"],
    }
    rate = self.clock.rate()
    if rate is not None:
      record["images_per_sec"] = rate
    record.update(
      grad_norm=float(diagnostics["grad_norm"]), param_norm=float(diagnostics["param_norm"])
    )
    if self.config.on_nonfinite == "skip":
      record["skipped_steps"] = sums["nonfinite"]
    if self.config.log_block_norms:
      record["block_grad_norms"] = np.asarray(diagnostics["block_grad_norms"]).tolist()
      record["block_param_norms"] = np.asarray(diagnostics["block_param_norms"]).tolist()
    self.final.update(train_loss=sums["loss"], train_error=sums["error"])
    return record

  def eval_record(self, split: str, sums: dict) -> dict:
    prefix = "test" if split == "test" else "train_eval"
    record = {f"{prefix}_loss": sums["loss"], f"{prefix}_error": sums["error"]}
    self.final.update(record)
    return record

  def write(self, step: int, record: dict, lr: float) -> None:
    """The record to metrics.jsonl and the event file, and the progress line to the console (if
    there is a record)."""
    if not record or not self.main:
      return
    self._writer.write(step, **record)
    self._events.write(step, record)
    pct = lambda k: f"{100 * self.final[k]:.2f}%" if k in self.final else "-"
    rate = f"{record['images_per_sec']:,.0f} img/s | " if "images_per_sec" in record else ""
    print(
      f"step {step}/{self.total} | loss {self.final.get('train_loss', float('nan')):.4f} | "
      f"train err {pct('train_error')} | test err {pct('test_error')} | lr {lr:.4g} | "
      f"{rate}ETA {self.clock.eta()}",
      flush=True,
    )

  def diverged(self, step: int, sums: dict, last_checkpoint) -> str:
    """Status 'diverged'; returns the error message."""
    reason = (
      f"non-finite loss, gradients, parameters or BN statistics by step {step} "
      f"(mean training loss since the last log: {sums['loss']:.4g})"
    )
    self.status("diverged", step=step, reason=reason, last_checkpoint=last_checkpoint)
    if last_checkpoint is None:
      return (
        f"{reason}; no checkpoint was written yet (the first was due at step "
        f"{min(self.config.checkpoint_every_steps or self.total, self.total)}), so nothing is kept "
        "to resume from: lower the lr or add warm-up and train in a new workdir"
      )
    return (
      f"{reason}; the last good checkpoint (step {last_checkpoint}) is kept in "
      f"{workdir_lib.checkpoint_dir(self.workdir)}"
    )

  def compiling(self, net: str) -> None:
    """The line before the first step, which compiles the train step (minutes for deep nets)."""
    if self.main:
      print(f"compiling the train step of {net} (first step; takes a while on CPU)...", flush=True)

  def preempted(self, step: int) -> str:
    """Status 'preempted'; returns the error message."""
    self.status("preempted", step=step, reason="SIGTERM")
    return f"SIGTERM at step {step}: checkpoint saved in {self.workdir}; relaunch to resume"

  def done(self, step: int) -> dict:
    self.final.update(self.clock.timed())
    self.final.update(steps=self.total, epochs=self.total / self.steps_per_epoch)
    self.status("done", step=step, **self.final)
    return self.final

  def close(self) -> None:
    """Closes (and so flushes) both files, the event file even if closing metrics.jsonl fails."""
    if self._writer is not None:
      try:
        self._writer.close()
      finally:
        self._events.close()


def already_done(workdir: str, step: int) -> None:
  """The line of a relaunched run that has nothing left to train."""
  if jax.process_index() == 0:
    print(f"{workdir} is already done at step {step}; nothing to train", flush=True)


def final_line(final: dict, batch_size: int) -> str:
  """The run's final metrics in one line: 'done: step 60 (1.3 epochs), train error 12.30%, test
  error 14.50%, 1,234 images/s' (the parts the run measured)."""
  parts = [f"done: step {final['steps']}" if "steps" in final else "done"]
  if "epochs" in final:
    parts[0] += f" ({final['epochs']:.3g} epochs)"
  for key, name in (
    ("train_loss", "train loss"),
    ("train_error", "train error"),
    ("train_eval_error", "train-set error (eval mode)"),
    ("test_error", "test error"),
  ):
    if isinstance(final.get(key), (int, float)):
      value = final[key]
      parts.append(f"{name} {value:.4f}" if key == "train_loss" else f"{name} {100 * value:.2f}%")
  if final.get("timed_seconds") and final.get("timed_steps"):
    rate = final["timed_steps"] * batch_size / final["timed_seconds"]
    parts.append(f"{rate:,.0f} images/s (evaluations included)")
  return ", ".join(parts)
