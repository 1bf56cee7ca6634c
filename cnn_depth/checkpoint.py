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
* **Corrupt step** (files truncated or lost after the rename). orbax fails with whatever the storage
  layer raises (tensorstore `Exception`, `ValueError`, `KeyError`, `JSONDecodeError`...). `restore`
  and `load_for_analysis` turn that into a `CheckpointError` naming the step directory and saying to
  delete it to fall back to the previous step; the orbax error is chained (`from e`). There is no
  automatic fall-back: silently training on from an older step would hide the problem. orbax stores
  no checksums: flipped bytes inside an array file restore *without any error*. The failed restore
  leaves tensorstore reads behind whose callbacks find orbax's event loop closed and report a
  traceback each ("RuntimeError: Event loop is closed", through `sys.unraisablehook`, ~100, during
  the restore or at exit, burying the one-line error): restores install a `sys.unraisablehook`
  filter that drops those reports, and only those.
* **Typed PRNG keys** (`jax.random.key`) round-trip: orbax records the key implementation and gives
  back a typed key, with or without a template (its metadata shows the key data, shape (2,) uint32).
* **Donation.** `save` copies the arrays to host memory before it returns (the file writing may go
  on in a background thread), so the next train step may donate the state's buffers at once.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_manager import StepAlreadyExistsError

# The suffix orbax 0.12 gives a step directory while it is being written (see the module docstring).
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
  """A checkpoint could not be written or read; the message says which one and what to do."""


def abstract_state(tree: Any) -> Any:
  """A tree of `jax.ShapeDtypeStruct` (shape, dtype, sharding) for a tree of arrays.

  Leaves that already are `ShapeDtypeStruct`s pass through. Typed PRNG keys keep their key dtype
  (`ocp.utils.to_shape_dtype_struct` would describe them by their uint32 key data, which restores
  too).
  """

  def leaf(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      return x
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return ocp.utils.to_shape_dtype_struct(x)

  return jax.tree.map(leaf, tree)


def _first_line(e: BaseException, limit: int = 300) -> str:
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  text = text if len(text) <= limit else text[:limit] + "..."
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


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
  step_dir = os.path.join(directory, str(step))
  earlier = [s for s in steps if s < step]
  fallback = (
    f"delete {step_dir} to fall back to step {max(earlier)}"
    if earlier
    else f"delete {step_dir} (there is no earlier checkpoint) to start from scratch"
  )
  return CheckpointError(
    f"could not {what} checkpoint step {step} in {directory} ({_first_line(e)}). If the checkpoint "
    f"is corrupt (a full disk, lost or truncated files), {fallback}; if the model, optimiser or "
    f"number of devices changed since it was written, use a new --workdir."
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


class Checkpointer:
  """Saves the TrainState every `save_interval_steps` steps, keeping the last `keep` checkpoints.

      ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=3, save_interval_steps=1000)
      if ckpt.latest_step() is not None:
        state = ckpt.restore(state)      # the freshly created state is the template
      ...
      ckpt.save(step, state)             # returns at once; files are written in the background
      ...
      ckpt.save(step, state, force=True)
      ckpt.close()                       # waits for the last save

  Multi-host: every process calls `save`/`restore` with the same arguments (orbax coordinates).
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

  def save(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Starts saving `state` as `step` if this step is due (or `force`); True if a save started.

    orbax's rule for "due": `step` is a multiple of `save_interval_steps`, or the directory has no
    checkpoint yet (the first step given is saved), or JAX's preemption sync says the job is being
    preempted; never a step at or below the latest saved one. A step that is already saved (e.g.
    the final step, after a periodic save at the same step) is skipped, not overwritten.
    """
    step = int(step)
    try:
      return bool(self._manager.save(step, args=ocp.args.StandardSave(state), force=force))
    except StepAlreadyExistsError:
      return False
    except Exception as e:
      raise CheckpointError(
        f"could not save checkpoint step {step} in {self.directory} ({_first_line(e)})"
      ) from e

  def wait(self) -> None:
    """Blocks until the background save (if any) has finished writing."""
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
    target = abstract_state(state_like)
    _drop_closed_loop_reports()
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
      raise _restore_error(self.directory, step, steps, e, "restore") from e


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
