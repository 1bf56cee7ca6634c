"""What the figure tests share: a tiny fake workdir, the check that a figure was drawn, the check
that a committed result's README quotes the lines its script prints, and the four nets the li2018
and balduzzi2017 figures are drawn for."""

import os

from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import runs

NETS = [("cifar_resnet", 8), ("cifar_plain", 8), ("cifar_resnet", 20), ("cifar_plain", 20)]


def fake_run(workdir, family, depth, final_train):
  workdir.mkdir(parents=True)
  workdir_lib.write_config(str(workdir), {"model": {"family": family, "depth": depth}})
  with workdir_lib.MetricsWriter(str(workdir)) as w:
    for step in range(10, 110, 10):
      w.write(
        step,
        train_error=final_train + 1.0 / step,
        test_error=final_train + 0.05,
        block_grad_norms=[1.0 / step] * 3,
      )
  workdir_lib.write_status(str(workdir), "done", step=100)
  return runs.load_run(str(workdir))


def nonempty(png):
  assert os.path.getsize(png) > 5000
  assert os.path.getsize(png[:-4] + ".pdf") > 1000


def assert_readme_quotes(results_dir, lines):
  """Each of `lines` (recomputed from `results_dir`'s committed CSVs) is quoted in its README.md as
  the script printed it: a line of its own, indented four spaces."""
  readme = open(os.path.join(results_dir, "README.md")).read()
  for line in lines:
    assert f"    {line}\n" in readme, line
