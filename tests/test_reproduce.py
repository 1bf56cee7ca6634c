"""The reproduction scripts' quick modes, shortened, and their refusal without data."""

import csv
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHON=os.path.join(ROOT, ".venv", "bin", "python"))
  if not os.path.exists(env["PYTHON"]):
    import sys
    env["PYTHON"] = sys.executable
  return subprocess.run(["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_huang_quick_mode_makes_curves(tmp_path):
  proc = run("scripts/reproduce_huang2016.sh", "--quick", "--steps=4", f"--runs={tmp_path / 'runs'}",
             f"--out={tmp_path / 'out'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "out" / "curves.csv") as f:
    rows = list(csv.DictReader(f))
  assert {r["variant"] for r in rows} == {"constant depth", "stochastic depth (p_L=0.5)"}
  assert os.path.getsize(tmp_path / "out" / "curves.png") > 5000


def test_huang_full_mode_needs_data():
  proc = run("scripts/reproduce_huang2016.sh")
  assert proc.returncode == 2 and "--data_dir" in proc.stderr
