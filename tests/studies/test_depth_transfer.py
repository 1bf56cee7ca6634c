"""The depth-transfer study (cnn_depth/studies/depth_transfer.py): its lr grid and runs, the best lr
of a depth and the "depth_mup moves less" judgement on hand-made losses (diverged seeds and nets
stuck at chance included), and final_loss.csv, best_lr.csv and the figure from fake workdirs
(first tier); one tiny real training of both variants measured and drawn (second tier)."""

import math
import os

import pytest
from helpers.figures import assert_readme_quotes, nonempty

from cnn_depth import sweep
from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import depth_transfer as dt
from cnn_depth.studies import registry

CHANCE = math.log(10)


def options(quick=True, **given):
  return dt.STUDY.options(quick, None if quick else "/data/cifar", **given)


def test_grid_spans_the_lrs_depths_variants_and_seeds():
  o = options()
  assert dt.learning_rates(o) == [0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0]
  specs = dt.grid(o)
  assert len(specs) == 6 * 3 * 2 * 3 and len({s.name for s in specs}) == len(specs)
  assert specs[0].name == "standard_lr0.00316_d8_s0" and specs[-1].name == "depth_mup_lr1_d56_s2"
  mup = next(s for s in specs if s.name == "depth_mup_lr0.0316_d20_s1")
  assert mup.config == "configs/quickstart.py:depth=20,steps=200,seed=1"
  assert set(mup.overrides) == {
    "--config.model.width=8", "--config.model.norm=none", "--config.model.branch=depth_mup",
    "--config.learning_rate=0.0316", "--config.eval_every_steps=200",
  }  # fmt: skip
  full = dt.grid(options(False))
  assert len(full) == 6 * 4 * 2 * 3 and full[-1].name == "depth_mup_lr1_d110_s2"
  assert {"--config.num_train_steps=7820", "--config.warmup=0.0",
          "--config.dataset.data_dir=/data/cifar"} <= set(full[-1].overrides)  # fmt: skip
  bn = dt.grid(options(seeds="0", depths="8", norm="bn", lr_count="2", lrs_per_decade="1"))
  assert [s.name for s in bn] == [f"{v}_lr{lr}_d8_s0" for v in dt.VARIANTS for lr in ("0.1", "1")]
  assert "--config.model.norm=bn" in bn[-1].overrides
  for spec in (specs[0], mup, full[-1], bn[-1]):  # the config loads, the overrides name its fields
    run = sweep.run_for(spec.config_path(), os.path.join("/tmp/r", spec.name), spec.overrides)
    assert run.name == spec.name


@pytest.mark.parametrize(
  "given, message",
  [
    ({"norm": "ws"}, "option norm must be 'none'"),
    ({"lr_count": "0"}, "lr grid needs"),
    ({"depths": "8,10"}, "option depths: depth 10 is not a valid depth .* 6n\\+2"),
  ],
)
def test_bad_options_are_one_sentence(given, message):
  with pytest.raises(registry.StudyError, match=message):
    dt.grid(options(**given))


def test_best_lr_skips_diverged_cells_and_nets_at_chance():
  losses = {
    0.01: [0.9, 1.1],  # mean 1.0
    0.1: [0.5, 0.7],  # mean 0.6: the best
    0.3: [0.1, None],  # lower, but a seed diverged: not a best lr
    1.0: [None, None],
  }
  lr, loss, std = dt.best_lr(losses, CHANCE)
  assert (lr, loss) == (0.1, pytest.approx(0.6)) and std == pytest.approx(0.1)
  # every cell at chance (2.30 > 0.9 ln 10) or diverged: no best lr, not the lowest of the noise
  assert dt.best_lr({0.01: [2.301, 2.302], 0.1: [2.29, 2.3], 1.0: [None, 1.0]}, CHANCE) == (
    None, None, None,
  )  # fmt: skip
  assert dt.best_lr({0.01: [2.05, 2.06]}, CHANCE)[0] == 0.01  # below 0.9 ln 10 = 2.072


def rows_of(table, seeds=(0, 1)):
  """final_loss.csv rows from {(variant, depth): [per lr: a loss, None (diverged) or a list per
  seed]} on the lr grid 0.01, 0.0316, 0.1, 0.316, 1."""
  lrs = [0.01, 0.0316, 0.1, 0.316, 1.0]
  rows = []
  for (variant, depth), losses in table.items():
    for i, (lr, loss) in enumerate(zip(lrs, losses)):
      for j, seed in enumerate(seeds):
        value = loss[j] if isinstance(loss, list) else loss
        rows.append({
          "variant": variant, "depth": depth, "lr": lr, "lr_index": i, "seed": seed,
          "diverged": int(value is None), "train_loss": "" if value is None else value,
          "chance_loss": CHANCE,
        })  # fmt: skip
  return rows


def test_moves_and_the_judgement_on_hand_made_losses():
  x = None  # diverged
  table = {
    ("standard", 8): [1.0, 0.8, 0.5, 0.3, 2.3],  # best 0.316
    ("standard", 20): [0.6, 0.4, 0.9, x, x],  # best 0.0316: 2 steps down
    ("standard", 56): [0.9, 1.5, 2.3, x, x],  # best 0.01: 3 steps down
    ("depth_mup", 8): [1.0, 0.7, 0.4, 0.6, 2.3],  # best 0.1
    ("depth_mup", 56): [1.1, 0.8, 0.5, [0.45, x], 2.3],  # best 0.1: 0.316 has a diverged seed
  }
  rows = rows_of(table)
  best = dt.best_lrs(rows)
  assert [(r["variant"], r["depth"], r["best_lr"], r["lr_index"]) for r in best] == [
    ("standard", 8, 0.316, 3), ("standard", 20, 0.0316, 1), ("standard", 56, 0.01, 0),
    ("depth_mup", 8, 0.1, 2), ("depth_mup", 56, 0.1, 2),
  ]  # fmt: skip
  assert best[-1]["diverged_lrs"] == "0.316" and best[2]["diverged_lrs"] == "0.316 1"
  assert dt.moves(best) == {"standard": -3, "depth_mup": 0}
  lines = dt.transfer_lines(rows, 10**0.5)
  assert lines[0].startswith("standard: best lr 0.316 at depth 8, 0.0316 at depth 20, 0.01 at")
  assert "moves -3 grid steps (x3.16 each) from depth 8 to 56" in lines[0]
  assert "a seed diverged at depth 20: lr 0.316 1; depth 56: lr 0.316 1" in lines[0]
  # seed 1 alone: depth_mup-56's best is 0.1 too (0.316 diverged there): it holds in both seeds
  assert lines[-1].endswith("moves less: shown (on the mean of seeds 0,1; in each seed alone it "
                            "holds in seeds 0,1)")  # fmt: skip
  # a move of one step is less than one of two, but not than one the other way; a best lr at the
  # grid's edge is flagged
  same = {**table, ("depth_mup", 8): [1.0, 0.7, 0.9, 0.95, 2.3]}  # best 0.0316
  same[("depth_mup", 56)] = [0.2, 0.8, 0.9, 1.0, 2.3]  # best 0.01: -1
  same[("standard", 8)] = [1.0, 0.8, 0.5, 0.7, 2.3]  # best 0.1
  same[("standard", 56)] = [0.3, 2.2, 2.3, x, x]  # best 0.01: -2
  move = dt.moves(dt.best_lrs(rows_of(same)))
  assert move == {"standard": -2, "depth_mup": -1} and dt.moves_less(move)
  assert not dt.moves_less({"standard": -1, "depth_mup": 1})
  assert "0.01 at depth 56 (grid edge)" in dt.transfer_lines(rows_of(same), 10**0.5)[1]


def test_a_net_that_no_lr_trains_moves_off_the_grid():
  x = None
  table = {
    ("standard", 8): [1.0, 0.8, 0.5, 0.3, 2.3],
    ("standard", 56): [2.302, 2.302, x, x, x],  # at chance or diverged at every lr
    ("depth_mup", 8): [1.0, 0.7, 0.4, 0.6, 2.3],
    ("depth_mup", 56): [1.1, 0.6, 0.5, 0.9, 2.3],  # best 0.1 -> 0.1
  }
  rows = rows_of(table)
  assert dt.moves(dt.best_lrs(rows)) == {"standard": None, "depth_mup": 0}
  lines = dt.transfer_lines(rows, 10**0.5)
  assert lines[0].startswith("standard: best lr 0.316 at depth 8, none at depth 56; it moves off")
  assert (
    "standard's off the grid (a depth has no best lr); depth_mup moves less: shown" in (lines[-1])
  )
  # the fix failing at depth is never "shown", whatever the other does
  assert not dt.moves_less({"standard": None, "depth_mup": None})
  assert not dt.moves_less({"standard": 3, "depth_mup": None})
  assert not dt.moves_less({"depth_mup": 0})


def fake_run(runs_dir, name, dataset, losses, status="done"):
  """A workdir with the training losses a run logs, and its status."""
  workdir = os.path.join(runs_dir, name)
  os.makedirs(workdir)
  workdir_lib.write_config(workdir, {"dataset": {"name": dataset}, "model": {"depth": 8}})
  with workdir_lib.MetricsWriter(workdir) as w:
    for step, loss in losses:
      w.write(step, train_loss=loss, train_error=0.5)
  workdir_lib.write_status(workdir, status, step=losses[-1][0] if losses else 0)


def test_csvs_figure_and_lines_from_fake_workdirs(tmp_path):
  """Two lrs x two depths x both variants, seed 0: a diverged run keeps its losses out of the CSV
  and is marked; a run not finished is named and left out; best_lr.csv has a row per net."""
  o = options(seeds="0", depths="8,20", lr_max="0.1", lr_count="2", lrs_per_decade="1")
  runs = tmp_path / "runs"
  loss = {("standard", 8): (0.5, 0.2), ("standard", 20): (0.4, None),
          ("depth_mup", 8): (0.6, 0.3), ("depth_mup", 20): (0.5, 0.25)}  # fmt: skip
  for (variant, depth, lr, seed), spec in dt.plan(o):
    value = loss[(variant, depth)][[0.01, 0.1].index(lr)]
    if spec.name == "depth_mup_lr0.01_d20_s0":
      continue  # not trained yet
    if value is None:
      fake_run(runs, spec.name, "digits", [(25, 3.0), (50, float("nan"))], "diverged")
    else:
      fake_run(runs, spec.name, "digits", [(25, 2.0), (50, value)])
  lines = dt.analyse(o, str(runs), str(tmp_path / "out"))
  nonempty(lines[0])
  assert lines[1] == "not finished, left out (1 runs): depth_mup_lr0.01_d20_s0"
  csv_lines = (tmp_path / "out" / "final_loss.csv").read_text().splitlines()
  assert csv_lines[0] == ("variant,norm,depth,lr,lr_index,seed,status,diverged,train_loss,"
                          "train_eval_loss,chance_loss")  # fmt: skip
  assert len(csv_lines) == 1 + 7
  assert f"standard,none,20,0.1,1,0,diverged,1,,,{CHANCE}" in csv_lines
  assert f"standard,none,8,0.1,1,0,done,0,0.2,,{CHANCE}" in csv_lines
  best = (tmp_path / "out" / "best_lr.csv").read_text().splitlines()
  assert best[0] == "variant,depth,best_lr,lr_index,train_loss,train_loss_std,seeds,diverged_lrs"
  assert best[1:] == ["standard,8,0.1,1,0.2,0.0,0,", "standard,20,0.01,0,0.4,0.0,0,0.1",
                      "depth_mup,8,0.1,1,0.3,0.0,0,", "depth_mup,20,0.1,1,0.25,0.0,0,"]  # fmt: skip
  by_seed = (tmp_path / "out" / "best_lr_by_seed.csv").read_text().splitlines()
  assert by_seed[0] == "variant,depth,seed,best_lr,lr_index,train_loss,diverged_lrs"
  assert lines[-1].startswith("depth transfer: depth_mup's best lr moves +0 grid steps, standard's "
                              "-1 grid steps; depth_mup moves less: shown")  # fmt: skip
  with pytest.raises(ValueError, match="no finished run"):
    dt.analyse(o, str(tmp_path / "empty"), str(tmp_path / "out2"))


@pytest.mark.slow
def test_a_tiny_real_grid_is_measured_and_drawn(tmp_path):
  """Both variants of ResNet-8 at width 4, 3 steps of the study's own runs (its configs and
  overrides, trained in this process): the CSV holds each run's logged loss, the config its branch
  rule, and the figure and the lines are made."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  o = options(seeds="0", depths="8", steps="3", width="4", lr_max="0.1", lr_count="1")
  for spec in dt.grid(o):
    config = config_lib.parse_overrides(
      config_lib.load_config_file(spec.config_path()), spec.overrides
    )
    train.train_and_evaluate(config, str(tmp_path / "runs" / spec.name))
  lines = dt.analyse(o, str(tmp_path / "runs"), str(tmp_path / "out"))
  nonempty(lines[0])
  from cnn_depth.analysis import plotting, runs

  rows = plotting.read_rows(str(tmp_path / "out" / "final_loss.csv"))
  assert [(r["variant"], r["depth"], r["lr"], r["status"]) for r in rows] == [
    ("standard", 8, 0.1, "done"), ("depth_mup", 8, 0.1, "done"),
  ]  # fmt: skip
  for r in rows:
    run = runs.load_run(str(tmp_path / "runs" / dt.run_name(r["variant"], 0.1, 8, 0)))
    assert run.config["model"]["branch"] == dt.VARIANTS[r["variant"]]
    assert run.config["model"]["width"] == 4 and run.config["learning_rate"] == 0.1
    assert r["train_loss"] == run.last("train_loss") and 0 < r["train_loss"] < 10
    assert r["train_eval_loss"] == run.last("train_eval_loss")
  assert lines[-1].startswith("depth transfer: depth_mup's best lr moves ")


def test_the_committed_quick_results_say_what_their_readme_says():
  """results/depth_transfer: the phenomenon lines recomputed from the committed final_loss.csv
  are the lines its README quotes (the claim 'depth_mup moves less: shown' among them), and
  best_lr.csv is what that CSV gives."""
  from cnn_depth.analysis import plotting

  out = os.path.join(registry.ROOT, "results", "depth_transfer")
  rows = plotting.read_rows(os.path.join(out, "final_loss.csv"))
  assert len(rows) == 108 and {r["seed"] for r in rows} == {0, 1, 2}
  lines = dt.transfer_lines(rows, 10**0.5)
  assert_readme_quotes(out, lines)
  assert lines[-1].startswith("depth transfer:") and "depth_mup moves less: shown" in lines[-1]
  best = {(r["variant"], r["depth"]): r["best_lr"] for r in dt.best_lrs(rows)}
  committed = plotting.read_rows(os.path.join(out, "best_lr.csv"))
  assert {(r["variant"], r["depth"]): r["best_lr"] for r in committed} == best
