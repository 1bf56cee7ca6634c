"""Several processes (hosts): start `jax.distributed`, and end a process at once when a peer is
gone.

What jax 0.10.2 does by itself when one of the processes dies (measured, 2 CPU processes, gloo):

* The others block in the next cross-process collective (gloo here, NCCL on GPUs) and do not notice.
* Only the coordination service's heartbeats detect it: after `heartbeat_timeout_seconds` (default
  100 s) without a heartbeat, every other process is terminated from C++ (`LOG(FATAL)`: SIGABRT,
  exit status 134, a stack dump, "The following tasks are unhealthy (stopped sending heartbeats):
  1"). No Python code runs, so a workdir's status.json would stay 'running'.
* If process 0, which hosts the coordination service, dies, the others are terminated the same way
  at once ("Socket closed" from the coordination service).
* The client's `missed_heartbeat_callback`, which could have turned this into a Python exception, is
  not an argument of `jax.distributed.initialize`, and handing jaxlib's client a Python callable
  crashes the process (`std::bad_cast`) when it fires.

So `PeerWatchdog` keeps its own watch, in Python, through the coordination service's key-value
store: every process's thread bumps a counter there every `interval` seconds and reads the others'.
A process whose counter stops for `timeout` seconds (killed, crashed, frozen), or which published an
error, is reported in one sentence naming it, `on_lost(message)` runs (the training script writes
status 'failed'), and this process exits with `EXIT_PEER_LOST`. `timeout` is below JAX's heartbeat
timeout (`initialize` sets that to `timeout + 60`), which stays as the backstop.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

import jax

EXIT_PEER_LOST = 5
_PREFIX = "cnn_depth/watchdog"


def initialize(
  coordinator_address: str | None,
  num_processes: int | None,
  process_id: int | None,
  peer_timeout: float,
) -> None:
  """`jax.distributed.initialize` with JAX's heartbeat timeout above `peer_timeout`. All three of
  address, count and id None: JAX takes them from the cluster it runs in (SLURM, Open MPI, a Cloud
  TPU pod...); a ValueError says in one sentence when it finds none."""
  auto = coordinator_address is None and num_processes is None and process_id is None
  try:
    jax.distributed.initialize(
      coordinator_address,
      num_processes,
      process_id,
      heartbeat_timeout_seconds=int(peer_timeout) + 60,
    )
  except ValueError as e:
    if not auto:
      raise
    raise ValueError(
      "--distributed=auto found no cluster to take the coordinator address, process count and "
      "process id from (JAX reads SLURM, Open MPI and Cloud TPU environments; here: "
      f"{_first_line(e).rstrip('.')}); start it with srun/mpirun/on the pod, or pass "
      "--coordinator_address, --num_processes and --process_id"
    ) from None


def _client():
  from jax._src import distributed  # the key-value client orbax and multihost_utils use as well

  client = distributed.global_state.client
  if client is None:
    raise RuntimeError("jax.distributed is not initialised")
  return client


def _first_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0] if lines else ''}"


class PeerWatchdog:
  """Ends this process with one sentence naming the lost process when another process stops.

      # after jax.distributed.initialize
      watchdog = PeerWatchdog(timeout=60, on_lost=lambda msg: ...)
      watchdog.start()
      try:
        ... train ...
      except Exception as e:
        watchdog.fail(str(e))       # the others exit naming this process instead of waiting for it
        raise
      finally:
        watchdog.finish()           # a process that is done is not waited for

  Every process must run one (each keeps the others' counters moving).
  """

  def __init__(
    self,
    timeout: float,
    on_lost: Callable[[str], None] | None = None,
    interval: float = 1.0,
    exit_code: int = EXIT_PEER_LOST,
  ):
    if timeout <= interval:
      raise ValueError(
        f"the peer timeout ({timeout} s) must exceed the check interval ({interval} s)"
      )
    self.timeout, self.interval, self.exit_code = timeout, interval, exit_code
    self.on_lost = on_lost
    self.me, self.count = jax.process_index(), jax.process_count()
    self._client = _client()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name="PeerWatchdog", daemon=True)

  def _key(self, kind: str, process: int) -> str:
    return f"{_PREFIX}/{kind}/{process}"

  def start(self) -> "PeerWatchdog":
    self._thread.start()
    return self

  def finish(self) -> None:
    """This process is done (normally or not): stop watching, and tell the others not to wait."""
    self._stop.set()
    try:
      self._client.key_value_set(self._key("finished", self.me), "1", allow_overwrite=True)
    except Exception:  # the coordinator may be gone already
      pass

  def await_loss(self) -> None:
    """After a collective failed (a peer's socket closed when it died, before its beats could be
    missed): give the watch `timeout` plus two checks to name the lost process, which ends this
    one (exit 5); returns if no process is found lost by then."""
    deadline = time.monotonic() + self.timeout + 2 * self.interval
    while self._thread.is_alive() and time.monotonic() < deadline:
      time.sleep(self.interval / 4)

  def fail(self, message: str) -> None:
    """Publishes this process's error, so the others exit at once naming it, and waits long enough
    for them to read it (process 0 hosts the key-value store: when it exits, the others are
    terminated by JAX before they could read anything)."""
    try:
      self._client.key_value_set(self._key("failed", self.me), message, allow_overwrite=True)
    except Exception:
      return
    if self.me == 0:
      time.sleep(3 * self.interval)

  def _lost(self, message: str, relaunch: bool = True) -> None:
    if self._stop.is_set():
      return
    message = f"{message}, so process {self.me} stops too"
    if relaunch:
      message += (
        f"; relaunch all {self.count} processes with the same command to resume from the last "
        "checkpoint"
      )
    try:
      if self.on_lost is not None:
        self.on_lost(message)
    finally:
      print(f"error: {message}", file=sys.stderr, flush=True)
      os._exit(self.exit_code)

  def _run(self) -> None:
    peers = [p for p in range(self.count) if p != self.me]
    last = {p: (None, time.monotonic()) for p in peers}  # the counter seen, when it last moved
    beat = 0
    while not self._stop.wait(self.interval):
      beat += 1
      try:
        self._client.key_value_set(self._key("beat", self.me), str(beat), allow_overwrite=True)
        entries = dict(self._client.key_value_dir_get(_PREFIX))
      except Exception as e:
        if self._stop.is_set():
          return
        self._lost(f"lost the coordination service of process 0 ({_first_line(e)})")
        return
      now = time.monotonic()
      for p in peers:
        failed = entries.get(self._key("failed", p))
        if failed is not None:
          self._lost(f"process {p} of {self.count} failed ({failed})", relaunch=False)
          return
        if self._key("finished", p) in entries:
          continue
        value = entries.get(self._key("beat", p))
        if value != last[p][0]:
          last[p] = (value, now)
        elif now - last[p][1] > self.timeout:
          self._lost(
            f"process {p} of {self.count} stopped responding (no sign of life for "
            f"{now - last[p][1]:.0f} s: killed, crashed or frozen)"
          )
          return
