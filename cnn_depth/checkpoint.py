"""Checkpoints of the TrainState with orbax: save every few steps, resume from the latest, read any
run's parameters for analysis without knowing its model.

Layout (orbax-checkpoint 0.12, `CheckpointManager` + `args.StandardSave`): one directory per step,
`<dir>/<step>/default/...` (an OCDBT/zarr array store plus `_METADATA`, `_sharding`).

What happens when things go wrong, as measured with orbax-checkpoint 0.12.8 on a local disk:

* **Interrupted save.** orbax writes a step into `<dir>/<step>.orbax-checkpoint-tmp`, writes
  `commit_success.txt` into it and only then renames it to `<dir>/<step>`. A process killed mid-save
  leaves the `.orbax-checkpoint-tmp` directory, which step listing ignores: `latest_step()` is the
  previous finished step. The leftover is deleted when the next writing `Checkpointer` opens the
  directory (`cleanup_tmp_directories`), so the same step can be saved again.
* **Checksums.** orbax stores none: a flipped byte in an array file restores *without any error*.
  Process 0 writes `<dir>/<step>/checksums.json` once orbax has committed a step
  (`cnn_depth/checksums.py`).
* **Corrupt step** (a file changed, truncated or lost after the commit). `restore` and
  `load_for_analysis` verify the checksums first: a `CheckpointError` names the file, the step
  directory to delete and the newest earlier step that passes. A step without checksums (older code,
  or killed between orbax's commit and its checksums) is used with a warning; orbax's own failure
  (tensorstore `Exception`, `ValueError`...) becomes the same kind of sentence, the error chained.
  No automatic fall-back: silently training on from an older step would hide the problem. A failed
  orbax restore's leftover reads report "Event loop is closed" (~100 tracebacks burying the one-line
  error) through `sys.unraisablehook`: restores install a filter that drops those, and only those.
* **Typed PRNG keys** (`jax.random.key`) round-trip: orbax records the key implementation and gives
  back a typed key, with or without a template (its metadata shows the key data, shape (2,) uint32).
* **Training sums.** `save(..., sums=...)` keeps the training loop's running sums (the metrics of
  the steps since the last log, a few scalars) with the step: process 0 writes them to
  `<dir>/<step>/train_sums.json` once orbax has committed the step, before its checksums (which
  cover the file), and `restore_sums` reads them back, so a resumed run's first log line averages
  the same steps as an uninterrupted run's. A step saved without them (older code) gives None.
* **Donation.** `save` copies the arrays to host memory before it returns (the file writing may go
  on in a background thread), so the next train step may donate the state's buffers at once.
* **Nothing left running at exit.** A writing orbax `CheckpointManager` starts the removal of
  `.orbax-checkpoint-tmp` leftovers in a background thread when it is created; only its next
  `save` waits for it (not its `close`). A process that exits while it runs (a relaunch refused in
  one line, exit 2) has its `asyncio.to_thread` calls refused by the interpreter's shutdown:
  "RuntimeError: cannot schedule new futures after (interpreter) shutdown" and a traceback follow
  the error line. `Checkpointer` therefore waits for that removal before it returns (a directory
  listing, ~1 ms a leftover), and `close` waits for the saves and their checksums: a closed
  `Checkpointer` leaves no thread of its own or of orbax's behind (train.py closes it on every path,
  errors included); `load_for_analysis`'s read-only manager removes nothing and is always closed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint.checkpoint_manager import StepAlreadyExistsError

from cnn_depth import checksums
from cnn_depth.console import first_line as _first_line

# The suffix orbax 0.12 gives a step directory while it is being written (see the module docstring).
TMP_SUFFIX = ".orbax-checkpoint-tmp"
MANIFEST = checksums.MANIFEST
# The training loop's running sums of a step, beside orbax's files (see the module docstring).
SUMS_FILE = "train_sums.json"


class CheckpointError(RuntimeError):
  """A checkpoint could not be written or read; the message says which one and what to do."""


def abstract_state(tree: Any) -> Any:
  """A tree of `jax.ShapeDtypeStruct` (shape, dtype, sharding) for a tree of arrays.

  Leaves that already are `ShapeDtypeStruct`s pass through. Typed PRNG keys keep their key dtype
  (`ocp.utils.to_shape_dtype_struct` would give their uint32 key data, which restores too).
  """

  def leaf(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      return x
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return ocp.utils.to_shape_dtype_struct(x)

  return jax.tree.map(leaf, tree)


def _drop_closed_loop_reports() -> None:
  """Installs (once) a `sys.unraisablehook` filter for the "Event loop is closed" RuntimeErrors that
  a failed orbax restore's leftover tensorstore reads raise in their callbacks (see the module
  docstring)."""
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop_reports", False):
    return

  def hook(unraisable):
    if (
      isinstance(unraisable.exc_value, RuntimeError)
      and str(unraisable.exc_value) == "Event loop is closed"
    ):
      return
    previous(unraisable)

  hook.drops_closed_loop_reports = True
  sys.unraisablehook = hook


def _restore_error(
  directory: str, step: int, steps: Sequence[int], e: BaseException, what: str
) -> CheckpointError:
  fallback = checksums.fallback(directory, step, steps)
  return CheckpointError(
    f"could not {what} checkpoint step {step} in {directory} ({_first_line(e)}). If the checkpoint "
    f"is corrupt (a full disk, lost or truncated files), {fallback}; if the model, optimiser or "
    "number of devices changed since it was written, use a new --workdir."
  )


def _verify(directory: str, step: int, steps: Sequence[int], what: str) -> None:
  """A CheckpointError if `step`'s files do not match its checksums; a warning if it has none."""
  step_dir = os.path.join(directory, str(step))
  problem = checksums.damage(step_dir)
  if problem is not None:
    raise CheckpointError(
      f"could not {what} checkpoint step {step} in {directory}: {problem} (damaged on disk, on "
      f"the network filesystem or in a copy); {checksums.fallback(directory, step, steps)}"
    )
  if not os.path.exists(os.path.join(step_dir, MANIFEST)):
    logging.warning(
      f"checkpoint step {step} in {directory} has no {MANIFEST} (saved by older code, or the "
      "run stopped just after saving it): its files are used unverified"
    )


def _manager(
  directory: str,
  *,
  keep: int | None = None,
  save_interval_steps: int = 1,
  read_only: bool = False,
  async_save: bool = True,
) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep,
    save_interval_steps=0 if read_only else save_interval_steps,  # orbax warns otherwise
    create=not read_only,
    read_only=read_only,
    cleanup_tmp_directories=not read_only,
    enable_async_checkpointing=async_save,
  )
  # Registering the handler lets a manager that has not saved anything restore without a template.
  return ocp.CheckpointManager(
    directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
  )


def _await_tmp_cleanup(manager: ocp.CheckpointManager) -> None:
  """Waits for the removal of unfinished steps that a writing manager starts in a background thread
  when it is created (see the module docstring); re-raises its error. orbax 0.12 offers no public
  call for it (`wait_until_finished` and `close` do not wait for it): the private one its `save`
  uses. tests/test_checkpoint.py checks that no thread is left running, should orbax rename it."""
  wait = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
  if wait is not None:
    wait()


class Checkpointer:
  """Saves the TrainState every `save_interval_steps` steps, keeping the last `keep` checkpoints.

      ckpt = Checkpointer(workdir_lib.checkpoint_dir(workdir), keep=3, save_interval_steps=1000)
      if ckpt.latest_step() is not None:
        state = ckpt.restore(state)      # the freshly created state is the template
      ...
      ckpt.save(step, state)             # returns at once; files are written in the background
      ...
      ckpt.save(step, state, force=True)
      ckpt.close()                       # waits for the last save

  Multi-host: every process calls `save`/`restore` with the same arguments (orbax coordinates);
  process 0 writes the checksums, every process verifies them.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    keep: int | None = 3,
    save_interval_steps: int = 1,
    *,
    async_save: bool = True,
  ):
    if keep is not None and keep < 1:
      raise ValueError(f"keep must be >= 1 (or None for all checkpoints), got {keep}")
    self.directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise CheckpointError(f"checkpoint directory {self.directory} is a file; choose another path")
    try:
      self._manager = _manager(
        self.directory, keep=keep, save_interval_steps=save_interval_steps, async_save=async_save
      )
    except Exception as e:
      raise CheckpointError(
        f"cannot use {self.directory} as a checkpoint directory ({_first_line(e)})"
      ) from e
    try:  # no orbax thread may outlive a Checkpointer that is not saving (see the module docstring)
      _await_tmp_cleanup(self._manager)
    except Exception as e:
      self._manager.close()
      raise CheckpointError(
        f"could not remove the unfinished checkpoints ({TMP_SUFFIX}) in {self.directory} "
        f"({_first_line(e)}); fix its permissions, or delete them by hand, and relaunch"
      ) from e
    self._hashing: threading.Thread | None = None
    self._hash_error: tuple[int, BaseException] | None = None

  def save(self, step: int, state: Any, *, force: bool = False, sums=None) -> bool:
    """Starts saving `state` as `step` if this step is due (or `force`); True if a save started.

    orbax's rule for "due": `step` is a multiple of `save_interval_steps`, or the directory has no
    checkpoint yet (the first step given is saved), or JAX's preemption sync says the job is being
    preempted; never a step at or below the latest saved one. A step that is already saved (e.g.
    the final step, after a periodic save at the same step) is skipped, not overwritten.
    `sums`: a flat dict of scalars (the loop's running sums, on the host) kept with the step.
    """
    step = int(step)
    self._join_hashing()
    try:
      started = bool(self._manager.save(step, args=ocp.args.StandardSave(state), force=force))
    except StepAlreadyExistsError:
      return False
    except Exception as e:
      raise CheckpointError(
        f"could not save checkpoint step {step} in {self.directory} ({_first_line(e)})"
      ) from e
    if started and jax.process_index() == 0:
      sums = None if sums is None else {k: np.asarray(v).item() for k, v in sums.items()}
      self._hashing = threading.Thread(target=self._checksum_when_committed, args=(step, sums))
      self._hashing.start()
    return started

  def _checksum_when_committed(self, step: int, sums: dict | None = None) -> None:
    """Writes `step`'s sums, then its checksums, once orbax has committed it (all processes'
    files, renamed)."""
    try:
      self._manager.wait_until_finished()
    except BaseException:  # the save failed: `wait` reports orbax's error
      return
    try:
      step_dir = os.path.join(self.directory, str(step))
      if sums is not None:
        with open(os.path.join(step_dir, SUMS_FILE), "w") as f:
          json.dump(sums, f, sort_keys=True)
      checksums.write(step_dir)
    except BaseException as e:
      self._hash_error = (step, e)

  def _join_hashing(self) -> None:
    """Waits for the checksums of the last save; a CheckpointError if they could not be written."""
    if self._hashing is not None:
      self._hashing, thread = None, self._hashing
      thread.join()
    if self._hash_error is not None:
      (step, e), self._hash_error = self._hash_error, None
      raise CheckpointError(
        f"could not write the checksums of checkpoint step {step} in {self.directory} "
        f"({_first_line(e)}); free space (or fix permissions) and relaunch the run to resume it"
      ) from e

  def wait(self) -> None:
    """Blocks until the background save (if any) has finished writing, checksums included."""
    self._join_hashing()  # returns at once if the save failed: orbax's error follows
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      raise CheckpointError(
        f"a checkpoint save in {self.directory} failed ({_first_line(e)})"
      ) from e

  def close(self) -> None:
    """Waits for pending saves and releases orbax's threads."""
    try:
      self.wait()
    finally:
      self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def all_steps(self) -> list[int]:
    """The finished checkpoints' steps, ascending (unfinished `.orbax-checkpoint-tmp` ones
    excluded)."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore(self, state_like: Any, step: int | None = None) -> Any:
    """The state saved at `step` (default: the latest), bit-exact, with `state_like`'s structure.

    `state_like` is a concrete TrainState (its shapes, dtypes and shardings are reused, its values
    ignored) or an abstract one of `jax.ShapeDtypeStruct`s with shardings (e.g. from
    `abstract_state`, or `jax.eval_shape` plus shardings).
    """
    self.wait()
    steps = self.all_steps()
    step = _pick_step(steps, step, self.directory)
    _verify(self.directory, step, steps, "restore")
    target = abstract_state(state_like)
    _drop_closed_loop_reports()
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
      raise _restore_error(self.directory, step, steps, e, "restore") from e

  def restore_sums(self, step: int) -> dict | None:
    """The running sums saved with `step` (after `restore` has verified the step's checksums),
    None for a step saved without them."""
    path = os.path.join(self.directory, str(step), SUMS_FILE)
    try:
      with open(path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError) as e:
      raise CheckpointError(
        f"could not read the training sums of checkpoint step {step} ({_first_line(e)}); "
        f"{checksums.fallback(self.directory, step, self.all_steps())}"
      ) from e


def _pick_step(steps: Sequence[int], step: int | None, directory) -> int:
  """`step`, or the latest of `steps`; a CheckpointError if there is none."""
  if step is None:
    if not steps:
      raise CheckpointError(f"no checkpoint in {directory} (none finished saving)")
    return steps[-1]
  if step not in steps:
    raise CheckpointError(f"no checkpoint for step {step} in {directory}; saved: {list(steps)}")
  return step


def load_for_analysis(
  directory: str | os.PathLike, step: int | None = None, *, device: jax.Device | None = None
) -> dict:
  """A checkpoint as raw nested dicts, readable without the model, the config or the devices it
  was trained on.

  Returns `{'step', 'params', 'batch_stats', 'opt_state', 'rng'}`: jax arrays placed on one device
  (`device`, default the first local one) whatever the sharding at save time. `rng` comes back as a
  typed PRNG key. Structures orbax cannot name come back generically: the optimiser state's tuples
  and namedtuples become lists and dicts, optax's `EmptyState()` becomes None.
  """
  directory = os.path.abspath(os.fspath(directory))
  if not os.path.isdir(directory):
    raise CheckpointError(f"no checkpoint directory {directory}")
  manager = _manager(directory, read_only=True)
  try:
    steps = sorted(manager.all_steps())
    step = _pick_step(steps, step, directory)
    _verify(directory, step, steps, "read")
    sharding = jax.sharding.SingleDeviceSharding(device or jax.local_devices()[0])
    _drop_closed_loop_reports()
    try:
      metadata = manager.item_metadata(step)
      if metadata is None:
        raise ValueError("the step has no readable 'default' item")
      # Without a target orbax would use the sharding saved with each array, which fails on
      # another device count; a target from the metadata places everything on one device.
      target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), dict(metadata.tree)
      )
      return manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
      raise _restore_error(directory, step, steps, e, "read") from e
  finally:
    manager.close()
