"""The fixes_why study (cnn_depth/studies/fixes_why.py): its grid is trainable_depth's at one depth,
its options are checked, its phenomena and CSVs come out of hand-made numbers as defined, its
figures are drawn from its CSVs; and (slow) one tiny real training of a net without BN (Fixup)
feeds the real measurement: undefined values are NaN with their reason, never a crash (the
instruments themselves: tests/analysis/test_shattered.py, test_hessian.py)."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
from helpers.figures import assert_readme_quotes, nonempty

from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import plotting
from cnn_depth.studies import fixes_why, registry, trainable_depth

STUDY = fixes_why.STUDY


def test_grid_is_trainable_depths_runs_at_the_one_depth():
  """The same run names, configs and overrides as trainable_depth's grid at that depth (so the
  same workdirs), every variant and seed; TAT has no run below its smallest depth (14)."""
  o = STUDY.options(quick=True)
  theirs = trainable_depth.STUDY.options(quick=True, depths=str(o.depth), seeds="0,1,2")
  assert fixes_why.grid(o) == trainable_depth.grid(theirs)
  assert {fixes_why.parse_name(s.name) for s in fixes_why.grid(o)} == {
    (v, o.depth, s) for v in trainable_depth.VARIANTS for s in (0, 1, 2)
  }
  shallow = STUDY.options(quick=True, depth="8", seeds="0")
  assert {fixes_why.parse_name(s.name)[0] for s in fixes_why.grid(shallow)} == (
    set(trainable_depth.VARIANTS) - {"tat_plain"}
  )
  assert STUDY.runs_dir == "trainable_depth"
  assert set(STUDY.quick) == set(STUDY.full)
  assert STUDY.quick["depth"] == max(trainable_depth.QUICK["depths"])
  assert STUDY.full["depth"] in trainable_depth.FULL["depths"]


def test_chosen_variants_come_with_both_references():
  o = STUDY.options(quick=True, seeds="0", variants="fixup")
  assert [s.name for s in fixes_why.grid(o)] == [
    f"{v}_d{o.depth}_s0" for v in ("plain_bn", "resnet_bn", "fixup")
  ]


@pytest.mark.parametrize(
  "given, says",
  [
    ({"depth": "51"}, r"option depth must be 6n\+2 and at least 8 \(8, 20, 56, 110, ...\), got 51"),
    ({"lag": "0"}, "option lag must be in 1..32, got 0"),
    ({"points": "5", "lag": "8"}, "option lag must be in 1..4, got 8"),
    ({"radius": "0"}, "option radius must be above 0"),
    ({"lanczos_iters": "1"}, "option lanczos_iters must be at least 2"),
    ({"variants": "fixup,bogus"}, "option variants must be 'all' or names of"),
  ],
)
def test_a_bad_option_is_one_sentence(given, says):
  with pytest.raises(registry.StudyError, match=says):
    fixes_why.grid(STUDY.options(quick=True, **given))


def test_a_missing_workdir_is_a_row_saying_so(tmp_path):
  o = STUDY.options(quick=True, seeds="0")
  row, curves = fixes_why.measure_run(str(tmp_path / "fixup_d20_s2"), o)
  assert (row["variant"], row["depth"], row["seed"], row["status"]) == ("fixup", 20, 2, "missing")
  assert math.isnan(row["lambda_max"]) and row["note"] == "no workdir: not trained"
  assert curves == {}
  says = f"no workdir of the trainable_depth grid at depth {o.depth} under"
  with pytest.raises(ValueError, match=says):
    fixes_why.measure(o, str(tmp_path))


def _row(variant, seed, init, trained, lmax, note=""):
  return {"variant": variant, "depth": 56, "seed": seed, "status": "done", "lag": 8,
          "correlation_init": init, "correlation_trained": trained, "lambda_max": lmax,
          "lambda_min": -0.1 * lmax * (1 + seed), "ratio": 0.1 * (1 + seed),
          "note": note}  # fmt: skip


def _rows():
  """Two seeds: ResNet above plain at init and flatter; Fixup undefined at init (zero gradient);
  SkipInit above plain in one seed only; NF sharper than plain in seed 1; TAT's seed 1 diverged."""
  nan = math.nan
  return [
    _row("plain_bn", 0, 0.20, 0.30, 50.0),
    _row("plain_bn", 1, 0.25, 0.35, 40.0),
    _row("resnet_bn", 0, 0.60, 0.50, 5.0),
    _row("resnet_bn", 1, 0.65, 0.55, 6.0),
    _row("fixup", 0, nan, 0.70, 3.0, "at init: constant"),
    _row("fixup", 1, nan, 0.72, 4.0, "at init: constant"),
    _row("skipinit", 0, 0.90, 0.80, 2.0),
    _row("skipinit", 1, 0.10, 0.80, 2.0),
    _row("nf_agc", 0, 0.50, 0.60, 10.0),
    _row("nf_agc", 1, 0.50, 0.60, 60.0),
    _row("tat_plain", 0, 0.40, 0.40, 8.0),
    {**_row("tat_plain", 1, 0.40, nan, nan, "diverged at step 100"), "status": "diverged"},
  ]


def test_phenomena_from_hand_made_numbers():
  lines = fixes_why.phenomena(_rows(), 8)
  find = lambda start: next(line for line in lines if line.startswith(start))
  assert find("depth 56, Balduzzi et al.: ResNet + BN's lag-8").endswith("(2 of 2 seeds): shown")
  assert find("depth 56, Li et al.: plain + BN's trained lambda_max above").endswith(": shown")
  fixup = [line for line in lines if line.startswith("ResNet + Fixup")]
  assert fixup[0].endswith("(0 of 2 seeds, undefined in seeds 0,1): NOT shown")  # init
  assert fixup[1].endswith("(2 of 2 seeds): shown")  # trained
  assert fixup[2].endswith("lambda_max below plain + BN's (2 of 2 seeds): shown")
  skipinit = [line for line in lines if line.startswith("ResNet + SkipInit")]
  assert skipinit[0].endswith("(1 of 2 seeds): NOT shown")
  assert find("NF-ResNet + AGC's trained lambda_max").endswith("(1 of 2 seeds): NOT shown")
  tat = [line for line in lines if line.startswith("plain + TAT")]
  assert tat[0].endswith("(2 of 2 seeds): shown")
  assert tat[1].endswith("(1 of 2 seeds, undefined in seed 1): NOT shown")  # trained: 0.4 > 0.3
  assert len(lines) == 2 + 3 * 4  # the fixes without rows (DKS, tanh) have no lines
  # the reference claims fail when they fail
  flipped = [{**r, "lambda_max": 1.0} if r["variant"] == "plain_bn" else r for r in _rows()]
  assert "(0 of 2 seeds): NOT shown" in fixes_why.phenomena(flipped, 8)[1]


def test_summary_lines_give_mean_std_and_each_seed_and_notes():
  lines = fixes_why.summary_lines(_rows(), 8)
  assert lines[0] == (
    "plain + BN-56: lag-8 correlation at init 0.225 ± 0.025 (0.2, 0.25), trained 0.325 ± 0.025 "
    "(0.3, 0.35); trained lambda_max 45 ± 5 (50, 40), |lambda_min/lambda_max| 0.15 ± 0.05 "
    "(0.1, 0.2)"
  )
  fixup = lines.index(next(line for line in lines if line.startswith("ResNet + Fixup-56")))
  assert "at init undefined, trained 0.71" in lines[fixup]
  assert lines[fixup + 1 : fixup + 3] == [
    "  seed 0: at init: constant",
    "  seed 1: at init: constant",
  ]
  assert any("trained 0.4 ± 0 (0.4, n/a)" in line for line in lines)


def test_csvs_and_figures_from_hand_made_values(tmp_path):
  """The CSVs keep a seed column and NaN for undefined values; both figures draw from them, with
  undefined curves and seeds left out of the means."""
  rows = [r for r in _rows() if r["variant"] in ("plain_bn", "resnet_bn", "fixup", "tat_plain")]
  lags = np.arange(fixes_why.MAX_LAG + 1)
  curves = {}
  for r in rows:
    for trained in (False, True):
      value = r["correlation_trained" if trained else "correlation_init"]
      curve = np.where(lags == 0, 1.0, value * np.exp(-lags / 20))
      curves[(r["variant"], 56, r["seed"], trained)] = (
        np.full(len(lags), value) if math.isnan(value) else curve
      )
  runs_csv, curves_csv = fixes_why.write_csvs(rows, curves, str(tmp_path))
  back = plotting.read_rows(runs_csv)
  assert [(r["variant"], r["seed"]) for r in back] == [(r["variant"], r["seed"]) for r in rows]
  assert math.isnan(back[4]["correlation_init"]) and back[4]["note"] == "at init: constant"
  corr = plotting.read_rows(curves_csv)
  assert list(corr[0]) == ["variant", "depth", "seed", "trained", "lag", "correlation"]
  assert len(corr) == len(curves) * len(lags)
  fixup_init = [r for r in corr if r["variant"] == "fixup" and r["trained"] == 0 and r["lag"] == 3]
  assert len(fixup_init) == 2 and all(math.isnan(r["correlation"]) for r in fixup_init)
  means = fixes_why._curves(corr)
  assert ("fixup", 0) not in means and means[("fixup", 1)][3] == 2
  x, mean, std, n = means[("plain_bn", 0)]
  assert n == 2 and mean[8] == pytest.approx(0.225 * math.exp(-0.4))
  nonempty(fixes_why.gradient_correlation(curves_csv, str(tmp_path / "c.png"), caption="c"))
  nonempty(fixes_why.summary(runs_csv, str(tmp_path / "s.png"), caption="c"))


@pytest.mark.slow
def test_a_real_net_without_bn_is_measured_and_its_undefined_values_said(tmp_path):
  """Fixup-8 at width 4 trained 2 steps on the digits (no BN: no batch statistics), and a copy of
  its workdir as a seed that diverged (no checkpoint): the study measures both through the real
  instruments. Fixup's initial net ignores its input (its classifier is zero), so its correlation at
  init is NaN with the reason; trained, the correlation and the Hessian's extremes are finite; the
  diverged seed's trained values are NaN with its status. The CSVs and figures follow, and every
  comparison lacking plain + BN is NOT shown."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  o = STUDY.options(
    quick=True, seeds="0,1", depth="8", variants="fixup", steps="2", width="4", lines="1",
    points="9", lag="2", hessian_examples="16", lanczos_iters="4",
  )  # fmt: skip
  (spec,) = [s for s in fixes_why.grid(o) if s.name == "fixup_d8_s0"]
  config = config_lib.parse_overrides(
    config_lib.load_config_file(spec.config_path()), spec.overrides
  )
  runs_dir, out = tmp_path / "runs", tmp_path / "out"
  train.train_and_evaluate(config, str(runs_dir / spec.name))
  shutil.copytree(runs_dir / spec.name, runs_dir / "fixup_d8_s1")
  shutil.rmtree(workdir_lib.checkpoint_dir(str(runs_dir / "fixup_d8_s1")))
  workdir_lib.write_status(str(runs_dir / "fixup_d8_s1"), "diverged", step=2)

  lines = fixes_why.analyse(o, str(runs_dir), str(out))
  rows = plotting.read_rows(str(out / "fixes_why.csv"))
  assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
    ("plain_bn", 0, "missing"), ("plain_bn", 1, "missing"), ("resnet_bn", 0, "missing"),
    ("resnet_bn", 1, "missing"), ("fixup", 0, "done"), ("fixup", 1, "diverged"),
  ]  # fmt: skip
  done, diverged = rows[4], rows[5]
  assert math.isnan(done["correlation_init"]) and math.isnan(diverged["correlation_init"])
  assert done["note"] == f"at init: {fixes_why.UNDEFINED_CORRELATION}"
  assert -1 <= done["correlation_trained"] <= 1
  assert np.isfinite(done["lambda_max"]) and done["lambda_min"] <= done["lambda_max"]
  assert done["lambda_max"] > 0
  assert math.isnan(diverged["correlation_trained"]) and math.isnan(diverged["lambda_max"])
  assert diverged["note"].startswith("diverged at step 2: the run did not finish")
  assert "4 runs of the grid have no workdir" in "\n".join(lines)
  fixup = [line for line in lines if line.startswith("ResNet + Fixup")]
  assert len(fixup) == 4 and all(line.endswith("NOT shown") for line in fixup[1:])
  for name in ("gradient_correlation.png", "fixes_why.png"):
    nonempty(os.path.join(out, name))


def test_the_committed_quick_results_say_what_their_readme_says():
  """results/fixes_why: the phenomenon lines recomputed from the committed fixes_why.csv (the
  depth-56 nets of trainable_depth, 3 seeds) are the lines its README quotes."""
  out = os.path.join(registry.ROOT, "results", "fixes_why")
  rows = plotting.read_rows(os.path.join(out, "fixes_why.csv"))
  assert len(rows) == 30 and {r["seed"] for r in rows} == {0, 1, 2}
  lines = fixes_why.phenomena(rows, 8)
  assert_readme_quotes(out, lines)
  assert lines[0].endswith(": shown") and lines[1].endswith(": shown")  # the references
  assert len(lines) == 2 + 3 * 6
