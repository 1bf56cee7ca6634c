"""The trainable-depth study (cnn_depth/studies/trainable_depth.py): its ten variants taken from the
fixes' presets (tanh at the mean-field critical point), its grid and options, the CSVs from fake
workdirs (a diverged run included), the phenomena on hand-made numbers (first tier); one tiny real
training measured and drawn through `analyse` (second tier)."""

import csv
import math

import pytest
from helpers.figures import assert_readme_quotes, nonempty

from cnn_depth import workdir as workdir_lib
from cnn_depth.models import fixes, meanfield
from cnn_depth.studies import registry
from cnn_depth.studies import trainable_depth as td


def options(quick=True, **given):
  return td.STUDY.options(quick, data_dir=None if quick else "/data/cifar", **given)


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------------
# The variants and the grid


def test_variants_are_the_presets_fixes_at_one_learning_rate():
  assert list(td.VARIANTS) == [
    "plain_bn", "resnet_bn", "plain_nobn", "resnet_nobn", "fixup", "skipinit", "nf_agc",
    "tanh_delta_orth", "tat_plain", "dks_plain",
  ]  # fmt: skip
  v = td.VARIANTS
  assert v["fixup"].train == {"scalar_lr_scale": 0.1} and v["nf_agc"].train == {"grad_clip": "agc"}
  assert v["nf_agc"].model == {k: x for k, x in fixes.get("nf").model.items() if k != "depth"}
  assert all("learning_rate" not in x.train for x in v.values())  # one recipe: the option lr
  assert {x.min_depth for n, x in v.items() if n != "tat_plain"} == {8}
  assert v["tat_plain"].min_depth == 14
  tanh = v["tanh_delta_orth"].model
  assert tanh["sigma_b2"] == 0.05 and tanh["init"] == "delta_orthogonal"
  assert tanh["sigma_w2"] == pytest.approx(1.76095, abs=1e-5)  # not the preset's 1.2
  assert meanfield.chi_1("tanh", tanh["sigma_w2"], tanh["sigma_b2"]) == pytest.approx(1, abs=1e-9)
  assert v["dks_plain"].model["family"] == "cifar_plain" and "branch" not in v["dks_plain"].model
  assert v["plain_nobn"].model == {"family": "cifar_plain", "norm": "none"}


def test_each_variant_builds_its_net_and_tat_is_out_of_reach_at_plain_8():
  from cnn_depth import config as config_lib
  from cnn_depth import models

  o = options(seeds="0", depths="8,20")
  specs = {s.name: s for s in td.grid(o)}
  assert "tat_plain_d8_s0" not in specs and td.skipped(o) == ["tat_plain at depth 8"]
  for name, variant in td.VARIANTS.items():
    spec = specs[workdir_lib.run_name(name, variant.min_depth if name != "tat_plain" else 20, 0)]
    config = config_lib.parse_overrides(
      config_lib.load_config_file(spec.config_path()), spec.overrides
    )
    assert (config.learning_rate, config.model.width, config.dataset.name) == (0.1, 8, "digits")
    for field, value in variant.model.items():
      assert config.model[field] == value, (name, field)
    models.build_model(config.model, num_classes=10)
  config.model.depth = 8
  config.model.update(td.VARIANTS["tat_plain"].model)
  with pytest.raises(ValueError, match="tat_eta=0.9 is out of reach"):
    models.build_model(config.model, num_classes=10)


def test_grid_names_seeds_and_the_recipe_in_both_modes():
  o = options()
  specs = td.grid(o)
  assert (o.seeds, o.depths, o.dataset, o.lr) == ([0, 1, 2], [8, 20, 56], "digits", 0.1)
  assert len(specs) == 3 * (10 * 3 - 1)  # seeds x variants x depths, less TAT at 8
  assert specs[0].name == "plain_bn_d8_s0" and specs[-1].name == "dks_plain_d56_s2"
  assert specs[0].config == f"configs/quickstart.py:depth=8,seed=0,steps={o.steps}"
  assert "--config.log_every_steps=11" in specs[0].overrides  # 1,500 digits // 128: one epoch
  assert f"--config.eval_every_steps={o.steps}" in specs[0].overrides
  full = td.grid(options(False, depths="20,110", variants="fixup,resnet_bn"))
  assert [s.name for s in full[:4]] == ["resnet_bn_d20_s0", "resnet_bn_d110_s0", "fixup_d20_s0",
                                        "fixup_d110_s0"]  # fmt: skip
  assert full[0].config == "configs/cifar_resnet.py:depth=20,seed=0"
  assert "--config.log_every_steps=390" in full[0].overrides
  assert "--config.dataset.data_dir=/data/cifar" in full[0].overrides
  assert "--config.scalar_lr_scale=0.1" in full[2].overrides


def test_bad_options_are_one_sentence():
  for given, message in (
    ({"variants": "fixup,nope"}, "option variants must be 'all' or names of plain_bn"),
    ({"depths": "8,21"}, r"option depths must be 6n\+2 and at least 8 .*\[21\]"),
    ({"dataset": "nope"}, "option dataset: Unknown dataset 'nope'"),
  ):
    with pytest.raises(registry.StudyError, match=message):
      td.grid(options(**given))


# --------------------------------------------------------------------------------------------------
# Measurement and CSVs from fake workdirs


def fake(runs_dir, variant, depth, seed, final, diverge_at=None, epoch_steps=11):
  """A workdir of the grid's name: a log every epoch (train error 0.9 then falling to `final`,
  loss 10x the error), the test error at the end; or stopped as diverged at `diverge_at`."""
  wd = runs_dir / workdir_lib.run_name(variant, depth, seed)
  wd.mkdir(parents=True)
  family = td.VARIANTS[variant].model["family"]
  workdir_lib.write_config(str(wd), {"model": {"family": family, "depth": depth}, "seed": seed})
  last = diverge_at or 4 * epoch_steps
  with workdir_lib.MetricsWriter(str(wd)) as w:
    for step in range(epoch_steps, last, epoch_steps):
      error = final + (0.9 - final) * epoch_steps / step
      w.write(step, epoch=step / epoch_steps, train_error=error, train_loss=10 * error)
    if diverge_at is None:
      w.write(last, test_error=final + 0.01, train_eval_error=final)
  if diverge_at is None:
    workdir_lib.write_status(str(wd), "done", step=last)
  else:
    workdir_lib.write_status(str(wd), "diverged", step=diverge_at)


def test_csvs_from_fake_workdirs_with_a_diverged_run(tmp_path):
  runs = tmp_path / "runs"
  for seed, final in ((0, 0.02), (1, 0.04)):
    fake(runs, "resnet_bn", 8, seed, final)
  fake(runs, "fixup", 8, 0, 0.1)
  fake(runs, "fixup", 8, 1, 0.3, diverge_at=30)
  fake(runs, "dks_plain", 8, 0, 0.5, diverge_at=5)
  o = options(seeds="0,1", depths="8", variants="resnet_bn,fixup,dks_plain")
  by_seed, missing = td.measure_runs(o, str(runs))
  assert missing == 1  # dks_plain_d8_s1
  summary = td.summarize(by_seed)
  paths = td.write_csvs(by_seed, summary, str(tmp_path / "out"))
  got = rows(paths[0])
  assert list(got[0]) == [
    "variant", "depth", "seed", "status", "diverged", "diverged_step", "final_train_error",
    "final_train_loss", "first_epoch_train_accuracy", "test_error", "train_eval_error",
  ]  # fmt: skip
  assert [(r["variant"], r["seed"], r["status"]) for r in got] == [
    ("resnet_bn", "0", "done"), ("resnet_bn", "1", "done"), ("fixup", "0", "done"),
    ("fixup", "1", "diverged"), ("dks_plain", "0", "diverged"),
  ]  # fmt: skip
  assert float(got[0]["final_train_error"]) == pytest.approx(0.02 + 0.88 / 3)  # step 33's record
  assert float(got[0]["first_epoch_train_accuracy"]) == pytest.approx(0.1)  # 1 - 0.9 at epoch 1
  assert got[3]["diverged"] == "True" and got[3]["diverged_step"] == "30"
  assert got[3]["final_train_error"] == "nan" and float(got[3]["first_epoch_train_accuracy"]) > 0
  assert got[4]["first_epoch_train_accuracy"] == "nan"  # diverged before the first epoch ended
  mean = {(r["variant"], r["depth"]): r for r in rows(paths[1])}
  resnet, fixup = mean[("resnet_bn", "8")], mean[("fixup", "8")]
  counts = lambda r: (r["runs"], r["finished"], r["diverged"], r["trains"])
  assert counts(resnet) == ("2", "2", "0", "True") and counts(fixup) == ("2", "1", "1", "False")
  assert float(resnet["test_error"]) == pytest.approx(0.04)
  assert float(resnet["test_error_std"]) == pytest.approx(0.01)
  assert mean[("dks_plain", "8")]["final_train_error"] == "nan"


# --------------------------------------------------------------------------------------------------
# The phenomena on hand-made summaries


def cell(variant, depth, error, runs=3, diverged=0):
  return {
    "variant": variant, "depth": depth, "runs": runs, "finished": runs - diverged,
    "diverged": diverged, "final_train_error": error if diverged < runs else math.nan,
  }  # fmt: skip


def with_trains(cells):
  ref = {c["depth"]: c["final_train_error"] for c in cells if c["variant"] == "resnet_bn"}
  return [
    {**c, "trains": td.trains(c, ref[c["depth"]]) if c["depth"] in ref else ""} for c in cells
  ]


def test_degradation_is_shown_only_for_a_plain_net_worse_by_the_margin():
  base = [cell("resnet_bn", 8, 0.01), cell("resnet_bn", 110, 0.03), cell("plain_bn", 8, 0.01)]
  lines = td.degradation_lines(with_trains([*base, cell("plain_bn", 110, 0.30)]))
  assert lines[0].startswith("plain + BN degrades with depth: depth 8 1.0%, depth 110 30.0%")
  assert lines[0].endswith(": shown") and lines[1].endswith(": shown")
  lines = td.degradation_lines(with_trains([*base, cell("plain_bn", 110, 0.05)]))
  assert lines[0].endswith("NOT shown")  # 4 points worse: within the margin
  diverged = cell("plain_bn", 110, 0.0, diverged=1)  # a diverged seed counts as worse
  assert td.degradation_lines(with_trains([*base, diverged]))[0].endswith(": shown")
  worse_resnet = [cell("resnet_bn", 8, 0.01), cell("resnet_bn", 110, 0.2)]
  assert td.degradation_lines(with_trains(worse_resnet))[1].endswith("NOT shown")


def test_each_fix_trains_within_the_margin_and_nets_without_bn_fail():
  cells = with_trains([
    cell("resnet_bn", 110, 0.02), cell("fixup", 110, 0.06), cell("skipinit", 110, 0.08),
    cell("nf_agc", 110, 0.01, diverged=1), cell("tat_plain", 110, 0.9, diverged=3),
    cell("plain_nobn", 110, 0.88), cell("resnet_nobn", 110, 0.05), cell("dks_plain", 20, 0.0),
  ])  # fmt: skip
  got = {line.split(" at depth")[0]: line for line in td.deepest_lines(cells)}
  assert got["ResNet + Fixup trains"].endswith(": shown")  # 4 points above: within 5
  assert got["ResNet + SkipInit trains"].endswith("NOT shown")  # 6 points above
  assert got["NF-ResNet + AGC trains"].endswith("NOT shown")  # a seed diverged
  assert "diverged in 3 of 3 seeds" in got["plain + TAT (leaky ReLU) trains"]
  assert got["plain, no BN fails"].endswith(": shown")
  assert got["ResNet, no BN fails"].endswith("NOT shown")  # it trains
  assert got["plain + DKS (softplus) trains"].endswith("no finished ResNet + BN run to compare: "
                                                       "NOT shown")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Second tier: one real tiny run through the study's measurement and figure


@pytest.mark.slow
def test_a_real_tiny_run_is_measured_and_drawn(tmp_path):
  """ResNet-8 + Fixup of width 4, one epoch of the digits (11 steps) trained in this process from
  the grid's own spec; analyse writes both CSVs, the three-panel figure and the phenomena lines
  (every one NOT shown: there is no ResNet + BN run to compare with)."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  o = options(seeds="0", depths="8", steps="11", width="4", variants="fixup")
  (spec,) = td.grid(o)
  config = config_lib.parse_overrides(config_lib.load_config_file(spec.config_path()),
                                      spec.overrides)  # fmt: skip
  train.train_and_evaluate(config, str(tmp_path / "runs" / spec.name))
  lines = td.analyse(o, str(tmp_path / "runs"), str(tmp_path / "out"))
  (row,) = rows(tmp_path / "out" / "trainable_depth.csv")
  assert (row["variant"], row["depth"], row["seed"], row["status"]) == ("fixup", "8", "0", "done")
  for key in ("final_train_error", "first_epoch_train_accuracy", "test_error", "train_eval_error"):
    assert 0 <= float(row[key]) <= 1, key
  assert float(row["final_train_error"]) == pytest.approx(
    1 - float(row["first_epoch_train_accuracy"])
  )
  assert len(rows(tmp_path / "out" / "trainable_depth_summary.csv")) == 1
  nonempty(str(tmp_path / "out" / "trainable_depth.png"))
  assert lines[-1] == (
    "ResNet + Fixup trains at depth 8: no finished ResNet + BN run to compare: NOT shown"
  )


def test_the_committed_quick_results_say_what_their_readme_says():
  """results/trainable_depth: the phenomenon lines recomputed from the committed per-run CSV are
  the lines its README quotes (degradation shown, NF-ResNet + AGC trains at 56, Fixup, SkipInit,
  critical tanh, TAT and DKS NOT shown at lr 0.1), and the committed summary is that CSV's."""
  import os

  from cnn_depth.analysis import plotting

  out = os.path.join(registry.ROOT, "results", "trainable_depth")
  rows = plotting.read_rows(os.path.join(out, "trainable_depth.csv"))
  assert len(rows) == 87 and {r["seed"] for r in rows} == {0, 1, 2}
  summary = td.summarize(rows)
  lines = td.degradation_lines(summary) + td.deepest_lines(summary)
  assert_readme_quotes(out, lines)
  assert [line.rsplit(": ", 1)[1] for line in lines] == ["shown"] * 4 + [
    "NOT shown", "NOT shown", "shown", "NOT shown", "NOT shown", "NOT shown"
  ]  # fmt: skip
  committed = plotting.read_rows(os.path.join(out, "trainable_depth_summary.csv"))
  key = lambda r: (r["variant"], r["depth"], r["finished"], r["diverged"])  # noqa: E731
  assert [key(r) for r in committed] == [key(r) for r in summary]
