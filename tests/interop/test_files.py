"""cnn_depth/interop/files.py in-process: a written weight file has the permissions of every other
output (0666 less the umask; the safetensors library alone makes 0600), reads back equal, and an
--out that cannot be written is one sentence naming --out with nothing created (the script end to
end: tests/scripts/test_export_weights.py)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from cnn_depth.interop import files

TENSORS = {"conv1.weight": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3), "n": np.int64(3)}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_file_has_the_modes_of_other_outputs_and_reads_back(tmp_path, umask):
  path = str(tmp_path / "w.safetensors")
  old = os.umask(umask)
  try:
    files.write_state_dict(path, TENSORS, "safetensors")
    with open(tmp_path / "other.csv", "w") as f:  # how every other output is written
      f.write("x")
  finally:
    os.umask(old)
  mode = stat.S_IMODE(os.stat(path).st_mode)
  assert mode == 0o666 & ~umask == stat.S_IMODE(os.stat(tmp_path / "other.csv").st_mode)
  back = files.read_state_dict(path)
  assert set(back) == set(TENSORS)
  for key, value in TENSORS.items():
    assert np.array_equal(back[key], value) and back[key].dtype == np.asarray(value).dtype
  assert sorted(os.listdir(tmp_path)) == ["other.csv", "w.safetensors"]  # no temporary file left


def test_an_out_that_cannot_be_written_names_out_and_creates_nothing(tmp_path):
  (tmp_path / "existing").mkdir()
  (tmp_path / "a_file").write_text("x")
  cases = {
    str(tmp_path / "missing" / "dir" / "x.safetensors"): "does not exist; create it first",
    str(tmp_path / "existing"): "is a folder; name the file to write in it",
    str(tmp_path / "existing") + os.sep: "is a folder",
    str(tmp_path / "a_file" / "x.safetensors"): "does not exist",
    "": "--out is empty",
  }
  before = sorted(p.name for p in tmp_path.rglob("*"))
  for path, message in cases.items():
    with pytest.raises(ValueError, match="--out") as e:
      files.write_state_dict(path, TENSORS, "safetensors")
    assert message in str(e.value) and "\n" not in str(e.value), (path, str(e.value))
  assert sorted(p.name for p in tmp_path.rglob("*")) == before
