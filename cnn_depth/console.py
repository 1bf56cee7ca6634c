"""What a command prints: its own lines, warnings and errors; the libraries' INFO logs on request.

A 60-step run logs ~60 INFO lines from orbax and absl around its 5 progress lines, so the scripts
start with `quiet_unless_verbose()`: `--verbosity=0` (or 1) brings the INFO logs back.
"""

from __future__ import annotations

# Warnings that say nothing to act on: orbax's for every read-only CheckpointManager, which is how
# the analysis and export scripts open a checkpoint.
EXPECTED_WARNINGS = ("Given directory is read only",)


def quiet_unless_verbose() -> None:
  """absl logging at WARNING unless --verbosity was given on the command line (call after flags are
  parsed, e.g. first thing in an absl main); the EXPECTED_WARNINGS dropped either way."""
  import logging as std_logging

  from absl import flags, logging

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("absl").addFilter(_drop_expected)  # a second add of the same is a no-op


def _drop_expected(record) -> bool:
  return not str(record.msg).startswith(EXPECTED_WARNINGS)


def first_line(e: BaseException, limit: int = 300) -> str:
  """'TypeName: the first line of its message' (cut at `limit` characters): a library's error in
  one of our one-sentence errors."""
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  text = text if len(text) <= limit else text[:limit] + "..."
  return f"{type(e).__name__}: {text}" if text else type(e).__name__
