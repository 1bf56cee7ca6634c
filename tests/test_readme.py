"""CI proves the README: every `python scripts/...` command in its bash blocks runs, shortened.

Data paths are pointed at test-written data in the real on-disk formats, and training runs get
overrides that make them a few steps on a tiny width; nothing else about the command changes.
"""

import ast
import os
import re
import shlex

import pytest
from helpers.data_files import write_cifar_pickles
from helpers.runner import CACHE, ROOT, run_script

SHORT_TRAIN = [
  "--config.num_train_steps=2",
  "--config.num_epochs=-1",
  "--config.log_every_steps=1",
  "--config.eval_every_steps=2",
  "--config.checkpoint_every_steps=2",
  "--config.model.width=4",
  "--config.batch_size=16",
  "--config.warmup=0",
]
SHORT = {
  "scripts/train.py": SHORT_TRAIN,
  "scripts/models_table.py": ["--families=cifar_resnet"],
  "scripts/benchmark.py": [
    "--depths=8",
    "--batches=16",
    "--width=4",
    "--warmup=1",
    "--iters=1",
    "--repeats=1",
    "--out_dir=",
    "--loop_steps=4",
    "--log_every=2",
    "--eval_every=4",
    "--checkpoint_every=4",
  ],
  "scripts/quickstart.py": ["--steps=4", "--depths=8,14"],
  # The grids are planned and printed (the sbatch script for SLURM), not run:
  # tests/scripts/test_sweep.py and tests/scripts/test_sweep_slurm.py run real ones.
  "scripts/sweep.py": ["--dry_run"],
  "scripts/reproduce.py": [],  # its README commands are --list and --dry_run ones
}


def readme_commands():
  text = open(os.path.join(ROOT, "README.md")).read()
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", text, re.S):
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
      line = line.split("  #")[0].strip()
      # The analysis scripts need a trained workdir: tests/scripts/test_<script>.py run them on
      # the shared tiny workdirs.
      if line.startswith("python scripts/") and not line.startswith(
        (
          "python scripts/lesion.py",
          "python scripts/path_gradients.py",
          "python scripts/make_figures.py",
          "python scripts/loss_landscape.py",
          "python scripts/shattered_gradients.py",
          # These need a downloaded checkpoint: tests/scripts/test_import_weights.py runs them on
          # generated weights in the same formats.
          "python scripts/import_weights.py",
          "python scripts/export_weights.py",
          # Needs PyTorch: tests/scripts/test_benchmark_vs_torch.py runs it where PyTorch is.
          "python scripts/benchmark_vs_torch.py",
        )
      ):
        commands.append(line)
  return commands


def test_readme_has_the_commands_we_test():
  commands = readme_commands()
  assert any("configs/cifar_resnet.py:depth=110" in c for c in commands)
  assert any("configs/stochastic_depth.py" in c for c in commands)


def readme_fixes_table() -> list[tuple[str, list[str]]]:
  """The README's "Fixes for depth" table: (fix, its overrides) per row."""
  text = open(os.path.join(ROOT, "README.md")).read()
  start = text.index("## Fixes for depth")
  section = text[start : text.index("\n## ", start)]
  cells = [line.split("|")[1:-1] for line in section.splitlines() if "| `--config." in line]
  return [(c[0].strip(), shlex.split(c[3].strip().strip("`"))) for c in cells]


def test_every_command_of_the_fixes_table_builds_its_net():
  """Each row's overrides on the digits config (as the README runs them) pass the command line's
  parser and checks and build their net, in-process: the combination is one the model accepts."""
  from cnn_depth import config as config_lib
  from cnn_depth import models

  rows = readme_fixes_table()
  assert len(rows) == 8
  digits = config_lib.load_config_file("configs/quickstart.py")
  for fix, overrides in rows:
    config = config_lib.parse_overrides(digits, overrides)
    models.build_model(config.model, num_classes=10)


def test_readme_and_export_help_name_every_net_export_weights_can_write():
  """The nets with a PyTorch twin (cnn_depth/interop's registry) are the ones the README and
  `scripts/export_weights.py --help` (its docstring) list: every family and depth of the
  registry appears in both, and the families in both are the registry's."""
  from cnn_depth.interop import architectures
  from cnn_depth.models import registry

  readme = " ".join(open(os.path.join(ROOT, "README.md")).read().split())
  start = readme.index("It writes only nets with a")
  listed = {"README": readme[start : readme.index("gives the same list", start)]}
  script = open(os.path.join(ROOT, "scripts", "export_weights.py")).read()
  doc = ast.get_docstring(ast.parse(script))
  listed["--help"] = doc[doc.index("Only nets with a twin") : doc.index("is refused")]
  nets = [architectures.get(*key.split(":", 1)).model for key in architectures.names()]
  families = {net["family"] for net in nets}
  for where, text in listed.items():
    for net in nets:
      assert re.search(rf"\b{net['family']}\b", text), (where, net)
      assert re.search(rf"(?<!\d){net['depth']}(?!\d)", text), (where, net)
    named = {f for f in registry.FAMILIES if re.search(rf"\b{f}\b", text)}
    assert named == families, (where, named ^ families)


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, tmp_path):
  args = shlex.split(command)[1:]
  script = args[0]
  args = [a.replace("runs/", str(tmp_path) + "/runs/") for a in args]
  if any(a.startswith("--config.dataset.data_dir=") for a in args):
    write_cifar_pickles(tmp_path / "cifar", per_batch=8, num_test=10)
    args = [
      f"--config.dataset.data_dir={tmp_path / 'cifar'}"
      if a.startswith("--config.dataset.data_dir=")
      else a
      for a in args
    ]
  if script == "scripts/sweep.py" and "--status" in args:  # the table of a sweep root, even empty
    for a in args:
      if a.startswith("--workdir="):
        os.makedirs(a.partition("=")[2], exist_ok=True)
  if script == "scripts/quickstart.py" and not any(a.startswith("--workdir") for a in args):
    args.append(f"--workdir={tmp_path / 'quickstart'}")
  if not (script == "scripts/models_table.py" and "--fixes" in args):  # --fixes has no families
    args += SHORT.get(script, [])
  if script == "scripts/train.py":
    args.append(f"--compilation_cache={CACHE}")
  proc = run_script(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
