"""TensorBoard event files in the workdir: metrics.jsonl again, for `tensorboard --logdir runs/`.

metrics.jsonl stays the record of a run; the event files are a copy of it that TensorBoard reads,
written by process 0 alongside it (`RunLog` in reporting.py). Each metrics record becomes one
event at its step, with a value per key under the key's own name:

  a number             a scalar: `train_loss`, `test_error`, `lr`, `images_per_sec`, `grad_norm`...
  a list (block norms) a histogram over the list (one per logging step), and a scalar per entry
                       by its index in the list: `block_grad_norms/007` is block 7 (non-finite
                       entries stay out of the histogram; their scalars keep them)

The files lie directly in the workdir, not in a subfolder, because TensorBoard names a run by the
folder of its event files relative to --logdir: runs/p32 shows as `p32` (a subfolder would show as
`p32/tensorboard`, the same suffix on every run). TensorBoard passes over the other files.

Resume. Rather than appending with tensorboardX's `purge_step` (a SessionLog START that asks
TensorBoard's reader to hide the points a killed run logged after its checkpoint), every (re)start
deletes the workdir's event files and replays its metrics.jsonl, already truncated to the restored
step, into a fresh file before training goes on. So the files themselves hold each step once and in
order, for any reader; and points a killed process logged but never flushed come back from
metrics.jsonl, which `purge_step` cannot do. Replay takes about a second per 10^5 values. Replayed
points carry the restart's wall time (metrics.jsonl keeps no clock): plot them against steps.

The writer is tensorboardX's `EventsWriter`, the synchronous record writer beneath its
`SummaryWriter`, flushed after each record like metrics.jsonl. SummaryWriter's worker thread,
multiprocessing queue and atexit hook would buy nothing for a few KB per logging step, and its
`flush()` does not wait for queued events. No TensorFlow and no PyTorch are imported.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any, Iterable, Mapping

import numpy as np
from tensorboardX import summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

EVENTS_PREFIX = "events.out.tfevents."


def event_files(workdir: str) -> list[str]:
  """The event files directly in `workdir` (sorted: the order TensorBoard reads them in)."""
  return sorted(glob.glob(os.path.join(glob.escape(os.fspath(workdir)), EVENTS_PREFIX + "*")))


def _numbers(value: Any) -> np.ndarray | None:
  """`value` as a float64 array, or None if it is not a number or a (nested) list of numbers."""
  if isinstance(value, (str, bytes)) or value is None:
    return None
  try:
    return np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError):
    return None


def summary_values(record: Mapping[str, Any]) -> list[Summary.Value]:
  """The TensorBoard values of one metrics record (its `step` key, if any, is the event's step)."""
  values = []
  for key, value in record.items():
    array = _numbers(value)
    if key == "step" or array is None or array.size == 0:
      continue
    if array.ndim == 0:
      values.append(Summary.Value(tag=key, simple_value=float(array)))
      continue
    flat = array.ravel()
    values.extend(
      Summary.Value(tag=f"{key}/{i:03d}", simple_value=float(v)) for i, v in enumerate(flat)
    )
    finite = flat[np.isfinite(flat)]
    if finite.size:
      values.extend(summary.histogram(key, finite, bins="auto").value)
  return values


class EventWriter:
  """Writes metrics records as TensorBoard events to a new `workdir/events.out.tfevents.*` file.

      with EventWriter(workdir, replay=workdir_lib.read_metrics(workdir)) as events:
        events.write(step, {"train_loss": loss, "block_grad_norms": norms})

  The workdir's old event files are deleted first and the `replay` records (dicts with a `step`)
  written before anything else: the new file is the whole run so far (see the module docstring).
  """

  def __init__(self, workdir: str, replay: Iterable[Mapping[str, Any]] = ()):
    for path in event_files(workdir):
      os.remove(path)
    self._file = EventsWriter(os.path.join(os.fspath(workdir), "events"))
    for record in replay:
      self.write(record["step"], record, flush=False)
    self._file.flush()

  def write(self, step: int, record: Mapping[str, Any], *, flush: bool = True) -> None:
    """One event at `step` with the record's values (none for a record without numbers)."""
    values = summary_values(record)
    if values:
      event = Event(step=int(step), wall_time=time.time(), summary=Summary(value=values))
      self._file.write_event(event)
    if flush:
      self._file.flush()

  def close(self) -> None:
    """Flushes and closes the file; a second call does nothing."""
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> "EventWriter":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
