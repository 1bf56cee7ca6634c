"""cnn_depth/multihost.py with real processes: two scripts/train.py processes on 127.0.0.1 (gloo),
one of them SIGKILLed mid-training; the other must not wait for it forever.

* Process 1 lost: the survivor's PeerWatchdog exits 5 after --peer_timeout, with one line naming
  process 1, and status.json says 'failed' with the same reason.
* Process 0 lost (it hosts JAX's coordination service): JAX itself terminates the survivor at once
  (SIGABRT, "the JAX distributed service detected fatal errors"); no Python code runs there, so this
  test pins JAX's behaviour, which the module docstring and the README describe. If the survivor's
  collective fails first, its watchdog may name the lost coordination service (exit 5) before.
"""

from __future__ import annotations

import signal
import time

import pytest
from helpers.training import (
  Proc,
  assert_one_error_line,
  cli,
  free_port,
  read_metrics,
  read_status,
  wait_until,
)

from cnn_depth import multihost

PEER_TIMEOUT = 5


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_a_lost_process_stops_the_other_within_a_bounded_time(tmp_path, victim):
  workdir = tmp_path / "run"  # shared by both processes; only process 0 writes to it
  port = free_port()
  procs = [
    Proc(
      cli(
        workdir,
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={i}",
        f"--peer_timeout={PEER_TIMEOUT}",
        num_train_steps=100_000,
        checkpoint_every_steps=100_000,
        eval_every_steps=100_000,
      ),
      tmp_path / f"process{i}",
      devices=4,
    )
    for i in range(2)
  ]
  survivor = procs[1 - victim]
  try:
    wait_until(lambda: len(read_metrics(workdir)) >= 2, survivor, "2 training steps")
    procs[victim].popen.kill()
    killed_at = time.monotonic()
    rc = survivor.wait(timeout=PEER_TIMEOUT + 60)
    took = time.monotonic() - killed_at
  finally:
    for p in procs:
      p.kill()
  print(f"process {victim} killed: process {1 - victim} exited with {rc} after {took:.1f} s")
  if victim == 1:
    assert rc == multihost.EXIT_PEER_LOST, survivor.tail()
    # Counted from its last beat (1 s apart).
    assert PEER_TIMEOUT - 1.5 <= took < PEER_TIMEOUT + 15, took
    line = assert_one_error_line(survivor, "process 1 of 2 stopped responding")
    assert "relaunch all 2 processes" in line
    status = read_status(workdir)
    assert status["status"] == "failed" and "process 1 of 2" in status["reason"], status
  elif rc == multihost.EXIT_PEER_LOST:
    # The survivor's collective failed first (gloo: the peer's socket closed) and its watchdog,
    # given that time, found the coordination service gone before JAX ended the process.
    assert_one_error_line(survivor, "lost the coordination service of process 0")
    assert took < PEER_TIMEOUT + 15, took
  else:
    assert rc == -signal.SIGABRT, survivor.tail()
    assert took < 15, took
    assert "JAX distributed service detected fatal errors" in survivor.stderr(), survivor.tail()
