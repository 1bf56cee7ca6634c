"""scripts/export_weights.py's refusals: an --out that cannot be written, --format=torch without
PyTorch, and a net with no PyTorch twin, each one sentence with nothing written (the round trip
import -> export: tests/scripts/test_import_weights.py; the file's mode:
tests/interop/test_files.py)."""

from __future__ import annotations

import importlib.util
import os
from concurrent import futures

import pytest
from helpers.interop import one_error_line, reference_weights
from helpers.runner import run_script

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.slow
@pytest.mark.skipif(HAVE_TORCH, reason="PyTorch is installed here: the message for its absence")
def test_exporting_a_torch_file_without_pytorch_says_how(tmp_path):
  path, _ = reference_weights(tmp_path)
  workdir = tmp_path / "ref20"
  out = run_script(
    "scripts/import_weights.py",
    "--source=cifar_reference",
    "--arch=resnet20",
    f"--weights={path}",
    f"--workdir={workdir}",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  out = run_script(
    "scripts/export_weights.py",
    f"--workdir={workdir}",
    "--format=torch",
    f"--out={tmp_path / 'r20.th'}",
  )
  one_error_line(out, "--format=torch needs PyTorch", "pip install -e '.[torch]'", "safetensors")
  assert not (tmp_path / "r20.th").exists()


@pytest.mark.slow
def test_a_net_with_no_pytorch_twin_is_not_exported(tiny_workdirs, tmp_path):
  workdir = tiny_workdirs[False]  # a plain net on the digits (conftest.py), only read
  out = run_script(
    "scripts/export_weights.py", f"--workdir={workdir}", f"--out={tmp_path / 'x.safetensors'}"
  )
  one_error_line(out)
  assert not (tmp_path / "x.safetensors").exists()


def test_an_out_that_cannot_be_written_is_refused_before_the_checkpoint_is_read(
  tiny_workdirs, tmp_path
):
  """A missing folder, an existing folder (with or without its '/'): one line naming --out, exit 2,
  nothing created, the workdir's bytes unchanged (checked before the workdir is read)."""
  (tmp_path / "existing_dir").mkdir()
  workdir = tiny_workdirs[True]  # only read
  cases = [
    (f"{tmp_path}/missing/dir/x.safetensors", "does not exist; create it first"),
    (f"{tmp_path}/existing_dir", "is a folder; name the file to write in it"),
    (f"{tmp_path}/existing_dir/", "is a folder"),
  ]
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(
      pool.map(
        lambda c: run_script("scripts/export_weights.py", f"--workdir={workdir}", f"--out={c[0]}"),
        cases,
      )
    )
  for (out, message), proc in zip(cases, procs):
    one_error_line(proc, f"--out={out}", message)
  assert os.listdir(tmp_path) == ["existing_dir"] and not os.listdir(tmp_path / "existing_dir")
