r"""Reproduce a paper: train a study's runs through the sweep's launchers, then measure and draw.

  python scripts/reproduce.py --list                              # the studies and their options
  python scripts/reproduce.py --study=he2016 --quick              # embedded digits, no download
  python scripts/reproduce.py --study=he2016 --data_dir=/data/cifar --parallel=4    # the paper
  python scripts/reproduce.py --study=he2016 --data_dir=/data/cifar --launcher=slurm \
      --partition=gpu --gpus_per_node=1 --cpus_per_task=8 --wait   # Table 6 as one job array
  python scripts/reproduce.py --study=veit2016 --quick --seeds=0 --set=samples=20,lesion_samples=5
  python scripts/reproduce.py --study=li2018 --quick --train=false   # redraw from the workdirs

Each study (cnn_depth/studies/) names the runs it needs; they go to --runs (default
runs/<study>; li2018 and balduzzi2017 measure he2016's runs, in runs/he2016). Finished runs are
reused and interrupted ones resume, so a second call only draws again. The CSVs and figures go to
--out (default results/<study>). --seeds, --depths and --steps set the options of those names;
--set=key=value,... any other option of the study (--list shows them with their defaults). Exit
status 1 if a run failed (the figures are still drawn from the runs that finished), 2 on bad input.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import app, flags

from cnn_depth import cli, studies, sweep

_STUDY = flags.DEFINE_string("study", None, "The study to reproduce (--list shows them).")
_LIST = flags.DEFINE_bool(
  "list", False, "Print the studies, their papers and options; run nothing."
)
_QUICK = flags.DEFINE_bool("quick", False, "The quick mode: the embedded digits, no download.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The full mode's dataset (e.g. CIFAR-10).")
_RUNS = flags.DEFINE_string("runs", None, "Folder of the workdirs (default runs/<study>).")
_OUT = flags.DEFINE_string("out", None, "Where the CSVs and figures go (default results/<study>).")
_SEEDS = flags.DEFINE_string("seeds", None, "Seeds, comma-separated (default: the study's).")
_DEPTHS = flags.DEFINE_string("depths", None, "Depths, comma-separated (studies with depths).")
_STEPS = flags.DEFINE_string("steps", None, "Training steps per run (default: the study's).")
_SET = flags.DEFINE_multi_string(
  "set", [], "Other options of the study: key=value,key=value (a list: key=a,b,c)."
)
_TRAIN = flags.DEFINE_bool("train", True, "Train the runs first (false: only measure and draw).")
_LAUNCH = cli.define_launch_flags()


def _given() -> dict[str, str]:
  given = {k: f.value for k, f in (("seeds", _SEEDS), ("depths", _DEPTHS), ("steps", _STEPS))}
  given = {k: v for k, v in given.items() if v is not None}
  for text in _SET.value:
    key = None
    for item in (i for i in text.split(",") if i):
      name, eq, value = item.partition("=")
      if eq and name:
        key, given[name] = name, value
      elif key is not None and not eq:  # a list's next item: --set=variants=fixup,skipinit
        given[key] += "," + item
      else:
        raise studies.StudyError(f"--set takes key=value items (a list: key=a,b,c), got {item!r}")
  return given


def _list() -> str:
  lines = []
  for name in studies.names():
    s = studies.get(name)
    quick = ", ".join(f"{k}={v}" for k, v in s.quick.items())
    lines.append(f"{name}: {s.paper}\n  quick: {quick}")
    if s.full is not None:
      lines.append("  full (--data_dir): " + ", ".join(f"{k}={v}" for k, v in s.full.items()))
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _LIST.value:
    print(_list())
    return 0
  if not _STUDY.value:
    cli.fail(f"--study is required: one of {', '.join(studies.names())}")
  try:
    study = studies.get(_STUDY.value)
    options = study.options(_QUICK.value, _DATA_DIR.value, **_given())
    specs = study.grid(options)
  except studies.StudyError as e:
    cli.fail(str(e))
  runs_dir = _RUNS.value or study.default_runs_dir()
  out_dir = _OUT.value or study.default_out_dir()
  code = 0
  if _TRAIN.value:
    status = shlex.join([sys.executable, "scripts/sweep.py", "--status", f"--workdir={runs_dir}"])
    try:  # a run its config or net refuses (e.g. --depths=9 for a 6n+2 net) is one sentence too
      runs = [
        sweep.run_for(spec.config_path(), os.path.join(runs_dir, spec.name), spec.overrides)
        for spec in specs
      ]
      code = cli.launch(runs, runs_dir, _LAUNCH, f"reproduce_{study.name}",
                        status)  # fmt: skip
    except sweep.SweepError as e:
      cli.fail(str(e))
    if _LAUNCH.dry_run.value or code in (-1, 130):
      if code == -1:
        print(f"when the jobs are done, draw with: {shlex.join(sys.argv)} --train=false")
      return max(code, 0)
  cli.analysis_main(lambda: study.analyse(options, runs_dir, out_dir), out_dir)
  return code


if __name__ == "__main__":
  app.run(main)
