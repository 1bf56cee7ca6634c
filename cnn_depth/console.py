"""What a command prints: its own lines, warnings and errors; the libraries' INFO logs on request.

A 60-step run logs ~60 INFO lines from orbax and absl around its 5 progress lines, so the scripts
start with `quiet_unless_verbose()`: `--verbosity=0` (or 1) brings the INFO logs back. A command
line that absl cannot parse is one line too (`flag_error`): an unknown or missing flag named as a
flag, a --config override naming no field or holding a value of the wrong type.
"""

from __future__ import annotations

import re

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


def flag_error(e: BaseException, argv) -> str:
  """One sentence for an error absl or ml_collections raised while parsing a script's command line
  `argv`: a flag error named as one (an unknown flag, a required one missing, a value that is not
  of the flag's type), an override naming no config field, or a config file that failed to load."""
  program = argv[0] if argv else "the script"
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  if isinstance(e, (KeyError, AttributeError)) and e.args:  # ml_collections: an unknown field
    key, _, hint = str(e.args[0]).strip().strip('"').partition("\n")
    key = key.strip("'\"")
    bad = [o for o in overrides if o.rsplit(".", 1)[-1] == key] or overrides or [repr(key)]
    hint = f" ({' '.join(hint.split())})" if hint.strip() else ""
    return (
      f"{', '.join(bad)} names no field of the config{hint}; each override must name an "
      "existing field (e.g. --config.model.depth=56)"
    )
  text = str(e)
  name = getattr(e, "flagname", None)
  if type(e).__name__ == "UnrecognizedFlagError" and name:
    guess = re.search(r"Did you mean: (\S+?) ?\?", text)
    guess = f" (did you mean --{guess.group(1)}?)" if guess else ""
    return f"--{name} is not a flag of {program}{guess}; {program} --help lists its flags"
  missing = re.findall(r"Flag --(\S+) must have a value other than None", text)
  if missing:
    flags_ = " and ".join(f"--{m}" for m in missing)
    return (
      f"{flags_} {'is' if len(missing) == 1 else 'are'} required, e.g. {program} "
      "--config=configs/quickstart.py --workdir=runs/quickstart"
    )
  bad = re.match(r"flag --([^=\s]+)=(.*?): (.*)", text, re.S)
  if bad:
    flag, value, reason = bad.groups()
    value = value if value.isprintable() else repr(value)  # one line, whatever was typed
    value = value if len(value) <= 80 else value[:77] + "..."
    if "Traceback (most recent call last)" in reason:  # the config file raised: its last line
      reason = reason.strip().splitlines()[-1]
    reason = " ".join(reason.split()).rstrip(".")
    if flag == "config":
      return f"cannot load --config={value} ({reason}); fix the config file or its arguments"
    if flag.startswith("config."):
      from cnn_depth import config as config_lib

      default = config_lib.get_field(config_lib.base(), flag.partition(".")[2])
      scalar = default is not None and not hasattr(default, "items")  # not a sub-config
      like = f"like config.base()'s {default!r}" if scalar else "of the field's type"
      return (
        f"--{flag}={value} is not a value of the field's type ({reason}); give a value {like} "
        "(cnn_depth/config.py lists the fields)"
      )
    return f"--{flag}={value} is not a valid value ({reason}); {program} --help describes the flag"
  text = " ".join(text.split())
  return (
    f"bad command line ({type(e).__name__}: {text.rstrip('.')}); {program} --help lists its flags"
  )
