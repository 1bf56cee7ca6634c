"""The install the tests passed with: requirements.lock (the exact versions `make venv` installs)
against pyproject.toml's ranges, against the installed .venv, against the README's stated versions,
and the Makefile's `venv` target that installs it (and refuses a Python too old for the lock). No
network: the packages are read from the installed metadata, and `make` is only asked what it would
do (-n, -q) or stops at its Python check.
"""

import importlib.metadata as metadata
import os
import re
import subprocess
import sys

import pytest
import tomllib
from helpers.runner import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = os.path.join(ROOT, "requirements.lock")
EXTRAS = ("data", "test")  # what `make venv` installs; `torch` stays optional


def read_lock() -> dict[str, Requirement]:
  """The lock's pins by canonical name; every line a `name==version` (comments aside)."""
  pins = {}
  for line in open(LOCK).read().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    req = Requirement(line)
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not an exact pin"
    assert not req.url and not req.marker and not req.extras, f"{line!r} is not a plain pin"
    name = canonicalize_name(req.name)
    assert name not in pins, f"{req.name} is pinned twice"
    pins[name] = req
  return pins


def pinned_version(req: Requirement) -> str:
  return next(iter(req.specifier)).version


def project_requirements() -> list[Requirement]:
  project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
  reqs = project["dependencies"] + [r for e in EXTRAS for r in project["optional-dependencies"][e]]
  return [Requirement(r) for r in reqs]


def lock_python() -> str:
  """The Python version the lock was made with, from its header."""
  match = re.search(r"^# .*Python (\d+\.\d+\.\d+)", open(LOCK).read(), re.M)
  assert match, "requirements.lock's header names no Python version"
  return match.group(1)


def test_lock_pins_every_requirement_inside_pyprojects_range():
  pins = read_lock()
  assert "cnn-depth" not in pins, "the lock must not pin the package itself"
  for req in project_requirements():
    if req.marker and not req.marker.evaluate({"extra": ""}):
      continue
    name = canonicalize_name(req.name)
    assert name in pins, f"{req} (pyproject.toml) has no pin in requirements.lock"
    version = pinned_version(pins[name])
    assert req.specifier.contains(version, prereleases=True), (
      f"requirements.lock pins {req.name}=={version}, outside pyproject.toml's {req}"
    )


def test_lock_is_closed_under_the_pinned_packages_dependencies():
  """`pip install -r requirements.lock` resolves nothing new: every dependency of a pinned package
  (read from its installed metadata, which is the pinned version's: see the next test), and of the
  extras it is asked for with, is pinned too, inside that dependency's range."""
  pins = read_lock()
  env = {"python_full_version": lock_python(), "python_version": lock_python().rsplit(".", 1)[0]}
  todo = [(r, set(r.extras)) for r in project_requirements()]
  todo += [(pin, set()) for pin in pins.values()]
  checked = set()
  while todo:
    req, extras = todo.pop()
    key = (canonicalize_name(req.name), frozenset(extras))
    if key in checked:
      continue
    checked.add(key)
    try:
      dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
      continue
    for line in dist.requires or []:
      dep = Requirement(line)
      wanted = {"", *extras}
      if dep.marker and not any(dep.marker.evaluate({**env, "extra": e}) for e in wanted):
        continue
      dep_name = canonicalize_name(dep.name)
      assert dep_name in pins, f"{req.name} needs {dep}, which requirements.lock does not pin"
      version = pinned_version(pins[dep_name])
      assert dep.specifier.contains(version, prereleases=True), (
        f"{req.name} needs {dep}, but requirements.lock pins {dep.name}=={version}"
      )
      if dep.extras:
        todo.append((dep, set(dep.extras)))
  assert len(checked) >= len(pins)


def test_the_repositorys_venv_holds_the_locked_versions():
  if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv")):
    pytest.skip(f"the tests run in {sys.prefix}, not the repository's .venv that `make` builds")
  differ = []
  for pin in read_lock().values():
    try:
      installed = metadata.version(pin.name)
    except metadata.PackageNotFoundError:
      continue
    if installed != pinned_version(pin):
      differ.append(f"{pin.name} {installed} (lock: {pinned_version(pin)})")
  assert not differ, (
    f".venv differs from requirements.lock: {', '.join(differ)}; run make clean venv"
  )
  python = ".".join(map(str, sys.version_info[:2]))
  assert lock_python().startswith(python + "."), (python, lock_python())


def test_readme_states_the_locked_versions():
  readme = open(os.path.join(ROOT, "README.md")).read()
  pins = read_lock()
  for name in ("jax", "flax", "optax", "orbax-checkpoint"):
    stated = re.search(rf"`{name} ([0-9][^`]*)`", readme)
    assert stated, f"README states no tested version of {name} (as `{name} X.Y.Z`)"
    assert stated.group(1) == pinned_version(pins[name]), (name, stated.group(1))
  stated = re.search(r"`Python ([0-9][^`]*)`", readme)
  assert stated and stated.group(1) == lock_python(), "README's tested Python is not the lock's"


def make(venv, *args):
  return subprocess.run(
    ["make", "-C", ROOT, f"VENV={venv}", *args], capture_output=True, text=True, timeout=60
  )


def test_make_venv_installs_the_lock_and_reinstalls_when_it_changes(tmp_path):
  venv = tmp_path / "venv"
  plan = make(venv, "-n", "venv")
  assert plan.returncode == 0, plan.stderr
  lines = plan.stdout.splitlines()
  pip = f"{venv}/bin/python -m pip install"
  locked = [i for i, l in enumerate(lines) if l.startswith(pip) and "-r requirements.lock" in l]
  package = [i for i, l in enumerate(lines) if l.startswith(pip) and "--no-deps -e ." in l]
  assert locked and package and locked[0] < package[0], plan.stdout
  assert not any("-e '.[" in l or "-e .[" in l for l in lines), "the package's extras resolve anew"
  # The stamp: an existing venv installed after the lock's last change is up to date; one
  # installed before it is reinstalled.
  (venv / "bin").mkdir(parents=True)
  stamp = venv / ".installed"
  stamp.touch()
  inputs = ("requirements.lock", "pyproject.toml")
  newest = max(os.path.getmtime(os.path.join(ROOT, f)) for f in inputs)
  os.utime(stamp, (newest + 60, newest + 60))
  assert make(venv, "-q", "venv").returncode == 0
  os.utime(stamp, (newest - 60, newest - 60))
  assert make(venv, "-q", "venv").returncode == 1


def test_make_venv_refuses_a_python_the_lock_cannot_install_on(tmp_path):
  """PYTHON older than MIN_PYTHON: one `error:` line naming it, its version and what to run, exit 2
  from the recipe, and no venv created. The interpreter here answers as a Python 3.10 does."""
  python = tmp_path / "python3.10"
  python.write_text(
    "#!/bin/sh\n"
    'case "$*" in *version_info*) exit 1;; -V) echo "Python 3.10.13";; *) exit 99;; esac\n'
  )
  python.chmod(0o755)
  venv = tmp_path / "venv"
  proc = make(venv, f"PYTHON={python}", "venv")
  assert proc.returncode == 2, proc.stdout + proc.stderr
  errors = [line for line in proc.stderr.splitlines() if not line.startswith("make")]
  assert errors == [
    f"error: PYTHON={python} is Python 3.10.13, but requirements.lock needs 3.11 or newer: "
    "run make PYTHON=python3.11"
  ]
  assert not venv.exists()


def test_min_python_is_the_oldest_the_locked_packages_install_on():
  """Makefile's MIN_PYTHON admits every locked package's Requires-Python (read from .venv's
  metadata) and at least one package excludes the Python before it."""
  from packaging.specifiers import SpecifierSet

  makefile = open(os.path.join(ROOT, "Makefile")).read()
  minimum = re.search(r"^MIN_PYTHON := (\d+)\.(\d+)$", makefile, re.M)
  major, minor = int(minimum.group(1)), int(minimum.group(2))
  assert lock_python().startswith(f"{major}.") and int(lock_python().split(".")[1]) >= minor
  excludes_older = []
  for pin in read_lock().values():
    try:
      requires = metadata.metadata(pin.name).get("Requires-Python")
    except metadata.PackageNotFoundError:
      continue
    if requires:
      assert SpecifierSet(requires).contains(f"{major}.{minor}.0"), (pin.name, requires)
      if not SpecifierSet(requires).contains(f"{major}.{minor - 1}.99"):
        excludes_older.append(pin.name)
  assert excludes_older, f"no locked package needs Python {major}.{minor}: lower MIN_PYTHON"
