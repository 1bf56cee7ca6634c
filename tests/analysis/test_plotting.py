"""cnn_depth/analysis/plotting.py: each figure function runs on a tiny fake workdir or arrays and
writes a non-empty PNG and PDF; the CSV reader and the seed averaging behind the studies' figures
(results.py's summaries and tables, which the figures draw, are checked with them; each study's own
figures: tests/studies/)."""

import numpy as np
from helpers.figures import fake_run, nonempty

from cnn_depth.analysis import hessian, paths, plotting, results


def test_error_curves_and_summary(tmp_path):
  runs = {
    f"plain{d}": fake_run(tmp_path / f"p{d}", "cifar_plain", d, e)
    for d, e in ((8, 0.0), (32, 0.02))
  }
  nonempty(
    plotting.error_curves(
      [("plain nets", runs)], str(tmp_path / "fig" / "curves.png"), caption="test"
    )
  )
  s = results.summary(runs)
  assert abs(s["plain32"]["final_train_error"] - 0.03) < 1e-12
  assert s["plain8"]["steps"] == 100 and s["plain8"]["status"] == "done"


def test_lesion_and_path_gradient_figures(tmp_path):
  down = [False, False, True, False]
  nonempty(
    plotting.lesion_single(
      {"ResNet": (0.1, [0.12, 0.2, 0.3, 0.11], down), "plain": (0.1, [0.9, 0.9, 0.9, 0.85], down)},
      str(tmp_path / "lesion.png"),
    )
  )
  n = 10
  ks = list(range(n + 1))
  counts = paths.path_counts(n)
  mean = np.asarray([0.5**k for k in ks])
  nonempty(
    plotting.path_gradients(
      ks,
      counts,
      mean,
      0.1 * mean,
      paths.effective_paths(counts, mean),
      str(tmp_path / "paths.png"),
      net="ResNet-20",
    )
  )


def drawn_figures(monkeypatch) -> list:
  """The matplotlib Figures that plotting.save writes from now on (each saved as usual)."""
  figures, save = [], plotting.save
  monkeypatch.setattr(plotting, "save", lambda fig, path: figures.append(fig) or save(fig, path))
  return figures


def test_path_gradient_figure_names_the_net_and_draws_the_csvs_std(tmp_path, monkeypatch):
  """One seed of a 3-block net: the title names the net, every path-length axis has integer ticks
  (the default locator puts ticks at 0.5 steps over 0..3), and the bars of (b) are the std of
  path_gradients.csv's grad_norm_std column, drawn upwards from the mean, as the legend says."""
  import matplotlib.container

  figures = drawn_figures(monkeypatch)
  ks, counts = [0, 1, 2, 3], paths.path_counts(3)
  mean, std = np.asarray([1e-3, 4e-4, 1e-4, 2e-5]), np.asarray([0.0, 5e-4, 2e-4, 1e-5])
  paths.write_csv(str(tmp_path / "path_gradients.csv"), ks, counts, mean, std)
  csv_std = [
    row["grad_norm_std"] for row in plotting.read_rows(str(tmp_path / "path_gradients.csv"))
  ]
  png = plotting.path_gradients(
    ks, counts, mean, std, (0, 2), str(tmp_path / "path_gradients.png"), samples=50, net="ResNet-8"
  )
  nonempty(png)
  fig = figures[-1]
  assert fig._suptitle.get_text().startswith("ResNet-8: ")
  for ax in fig.axes:
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
    assert all("." not in t.get_text() for t in ax.get_xticklabels() if t.get_text()), ticks
  b = fig.axes[1]
  [bars] = [c for c in b.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
  segments = bars.lines[2][0].get_segments()
  np.testing.assert_allclose([seg[0][1] for seg in segments], mean)
  np.testing.assert_allclose([seg[1][1] - seg[0][1] for seg in segments], csv_std)
  legend = [t.get_text() for t in b.get_legend().get_texts()]
  assert legend == ["mean + std (grad_norm_std) over\nthe 50 sampled paths per length"]
  assert not any("s.e.m" in t for t in legend)


def test_error_curves_show_a_run_of_one_logged_point(tmp_path, monkeypatch):
  """A run that logged once (train and test error at one step) still draws: a marker per curve."""
  from cnn_depth import workdir as workdir_lib
  from cnn_depth.analysis import runs

  figures = drawn_figures(monkeypatch)
  (tmp_path / "r").mkdir()
  workdir_lib.write_config(str(tmp_path / "r"), {"model": {"family": "cifar_resnet", "depth": 8}})
  with workdir_lib.MetricsWriter(str(tmp_path / "r")) as w:
    w.write(4, train_error=0.5, test_error=0.6)
  run = runs.load_run(str(tmp_path / "r"))
  nonempty(plotting.error_curves([("ResNets", {"ResNet-8": run})], str(tmp_path / "curves.png")))
  lines = figures[-1].axes[0].lines
  assert [list(line.get_ydata()) for line in lines] == [[50.0], [60.0]]
  assert all(line.get_marker() == "o" and line.get_markersize() > 0 for line in lines)


def test_error_table_means_over_seeds_and_gradient_flow(tmp_path):
  runs = {
    f"r{s}": fake_run(tmp_path / f"r{s}", "cifar_resnet", 20, e) for s, e in ((0, 0.1), (1, 0.2))
  }
  runs["p"] = fake_run(tmp_path / "p", "cifar_plain", 20, 0.3)
  rows = results.error_table(runs, {("cifar_resnet", 20): 269_722})
  resnet = [r for r in rows if r["family"] == "cifar_resnet"][0]
  assert resnet["seeds"] == 2 and abs(resnet["train_error"] - 0.16) < 1e-9
  assert (
    abs(resnet["train_error_std"] - 0.05) < 1e-9 and abs(resnet["train_error_best"] - 0.11) < 1e-9
  )
  results.write_error_table(rows, str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
  md = (tmp_path / "t.md").read_text()
  assert "| cifar_resnet | 20 | 0.27M | 16.00 ± 5.00 (best 11.00) |" in md
  nonempty(
    plotting.gradient_flow({"plain": runs["p"], "resnet": runs["r0"]}, str(tmp_path / "g.png"))
  )


def test_lesion_multi_figure(tmp_path):
  ks = [1, 2, 3]
  nonempty(
    plotting.lesion_multi(
      {
        "ResNet": (ks, [0.1, 0.2, 0.4], [0.01, 0.05, 0.1]),
        "plain": (ks, [0.9, 0.9, 0.9], [0.0, 0.0, 0.0]),
      },
      str(tmp_path / "multi.png"),
      reorder={"ResNet": [(1.0, 0.1), (0.8, 0.2), (0.5, 0.5)]},
    )
  )


def test_veit_figures_draw_the_mean_and_spread_over_seeds(tmp_path, monkeypatch):
  """Lesion and path-gradient figures of two seeds: the mean drawn, ± std over seeds, the seed count
  in the legends, reorderings pooled; one seed given as {seed: value} draws as a single run."""
  import matplotlib.container

  down = [False, True, False]
  one = (0.1, [0.2, 0.4, 0.6], down)
  single = {"R": {0: one, 1: (0.3, [0.4, 0.8, 0.6], down)}, "P": (0.5, [0.9, 0.9, 0.9], down)}
  a, b = plotting.lesion_single({"R": one}, str(tmp_path / "a.png")), str(tmp_path / "b.png")
  with open(a, "rb") as fa, open(plotting.lesion_single({"R": {7: one}}, b), "rb") as fb:
    assert fa.read() == fb.read()
  figures = drawn_figures(monkeypatch)
  nonempty(plotting.lesion_single(single, str(tmp_path / "single.png")))
  ax = figures[-1].axes[0]
  [bars] = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
  np.testing.assert_allclose([bar.get_height() for bar in bars], [30, 60, 60])
  spans = [seg[1][1] - seg[0][1] for seg in bars.errorbar.lines[2][0].get_segments()]
  np.testing.assert_allclose(spans, [20, 40, 0])  # ± the std over seeds: 10, 20, 0
  assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [20]
  texts = [t.get_text() for t in ax.get_legend().get_texts()]
  assert texts[:2] == ["intact net (mean 20.0%)", "one block deleted (mean ± std, 2 seeds)"]
  assert [t.get_text() for t in figures[-1].axes[1].get_legend().get_texts()][0] == (
    "intact net (50.0%)"
  )
  multi = {"R": {0: ([1, 2], [0.1, 0.2], [0.0, 0.1]), 1: ([1, 2], [0.3, 0.6], [0.0, 0.1])}}
  reorder = {"R": {0: [(1.0, 0.1), (0.5, 0.2)], 1: [(0.8, 0.3)]}}
  nonempty(plotting.lesion_multi(multi, str(tmp_path / "multi.png"), reorder=reorder))
  a_ax, b_ax = figures[-1].axes
  np.testing.assert_allclose(a_ax.lines[0].get_ydata(), [20, 40])
  assert a_ax.get_legend().get_texts()[0].get_text() == "R (mean ± std, 2 seeds)"
  assert len(b_ax.collections[0].get_offsets()) == 3
  assert b_ax.get_legend().get_texts()[0].get_text() == "R (2 seeds pooled)"
  ks = np.arange(5)
  counts = paths.path_counts(4)
  means = np.stack([0.5**ks, 3 * 0.5**ks])
  nonempty(
    plotting.path_gradients(
      ks, counts, means, 0.1 * means, (0, 2), str(tmp_path / "paths.png"), samples=10, net="R"
    )
  )
  b_ax = figures[-1].axes[1]
  np.testing.assert_allclose(b_ax.lines[0].get_ydata(), 2 * 0.5**ks)
  assert b_ax.get_legend().get_texts()[0].get_text() == (
    "mean ± std over 2 seeds (grad_norm_seed_std),\n10 sampled paths per length each"
  )


def test_seed_means_and_types(tmp_path):
  rows = {("cifar_resnet", 8, s): [(0, 1.0 + s, -0.5), (200, 3.0 + s, -1.0)] for s in (0, 1, 2)}
  hessian.write_hessian_csv(str(tmp_path / "h.csv"), rows)
  read = plotting.read_rows(str(tmp_path / "h.csv"))
  assert (
    read[0]["step"] == 0 and isinstance(read[0]["step"], int) and read[0]["model"] == "cifar_resnet"
  )
  means = plotting.seed_means(read, ("model", "depth"), "step", "lambda_max")
  x, mean, std, n = means[("cifar_resnet", 8)]
  assert list(x) == [0, 200] and n == 3
  np.testing.assert_allclose(mean, [2.0, 4.0])
  np.testing.assert_allclose(std, np.std([0, 1, 2]))
  assert plotting.net_name("cifar_plain", 44) == "plain-44"


def test_a_curve_marks_the_steps_of_its_runs_recipe_changes(tmp_path):
  """A dotted vertical line, in the curve's colour, at each step changes.jsonl records."""
  from cnn_depth import workdir as workdir_lib
  from cnn_depth.analysis.runs import Run

  change = {"field": "learning_rate", "old": 0.1, "new": 0.5}
  workdir_lib.record_changes(str(tmp_path), 10, [change])
  metrics = [{"step": s, "train_error": 0.5 / s} for s in (5, 10, 15)]
  fig, ax = plotting.plt.subplots()
  run = Run(str(tmp_path), {}, metrics, None)
  plotting.curve(ax, run, "train_error", 1.0, 100, "r", color="C1")
  marks = [line for line in ax.lines if line.get_linestyle() == ":"]
  assert [list(line.get_xdata()) for line in marks] == [[10, 10]]
  assert marks[0].get_color() == "C1"
  plotting.plt.close(fig)
