"""Figures: written whole at one column's exact size, showing exactly the medians and spreads they are given."""

from __future__ import annotations

import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from reports.figures import (COLUMN_WIDTH_IN, DPI, ablation_figure, save_figure, tradeoff_figure,
                             training_curves_figure)

VARIANTS = ["fine-tune", "KD", "KD + back-translation", "eps=1e-05", "alpha=0.5"]
SEEDS = [13, 7, 42]


@pytest.fixture
def runs() -> pd.DataFrame:
    # values deliberately not in sorted order: the figure keeps the order of first appearance
    values = ["1e-05", "0.1", "1e-03", "1", "0.01"]
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"value": value, "seed": seed, "score": 0.8 + 0.02 * i + rng.uniform(-0.01, 0.01)}
                         for i, value in enumerate(values) for seed in SEEDS])


@pytest.fixture
def points() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"variant": variant, "seconds": 20 * 4 ** i * rng.uniform(0.8, 1.2),
                          "score": 0.8 + 0.01 * i + rng.uniform(-0.01, 0.01)}
                         for i, variant in enumerate(VARIANTS) for _ in SEEDS])


@pytest.fixture
def curves() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame([{"variant": variant, "seed": seed, "epoch": epoch,
                          "dev_score": 0.7 + 0.02 * i + 0.03 * epoch + rng.uniform(-0.01, 0.01),
                          "train_loss": 0.7 / epoch + rng.uniform(0, 0.05)}
                         for i, variant in enumerate(VARIANTS[:4]) for seed in SEEDS for epoch in (0.5, 1.0, 1.5, 2.0)])


def check_saved(fig, folder) -> None:
    """Both files complete, at the figure's size, nothing else left in the folder, no figure left open."""
    width, height = fig.get_size_inches()
    assert width == COLUMN_WIDTH_IN
    pdf, png = save_figure(fig, folder / "out" / "figure")
    assert (pdf.name, png.name) == ("figure.pdf", "figure.png")
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["figure.pdf", "figure.png"]
    with Image.open(png) as image:
        assert image.size == (round(width * DPI), round(height * DPI))
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert (float(box[1]), float(box[2])) == pytest.approx((width * 72, height * 72), abs=0.01)
    assert b"/FontFile2" in data and b"/Type3" not in data  # fonts embedded as TrueType programs (pdf.fonttype 42)
    assert plt.get_fignums() == []


def median_points(ax) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, x, y) of each error bar's markers (errorbar keeps them as object arrays)."""
    return [(c.get_label(), *np.asarray(c.lines[0].get_data(), dtype=float)) for c in ax.containers]


def test_ablation_shows_median_and_range_of_seeds_per_value_in_given_order(runs, tmp_path):
    fig = ablation_figure(runs, swept="eps", ylabel="SST-2 dev accuracy (x100)")
    ax = fig.axes[0]
    stats = runs.groupby("value", sort=False)["score"].agg(["median", "min", "max"]) * 100
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1e-05", "0.1", "1e-03", "1", "0.01"]
    ((_, x, y),) = median_points(ax)
    np.testing.assert_allclose(x, range(5))
    np.testing.assert_allclose(y, stats["median"])
    bars = np.array(ax.containers[0].lines[2][0].get_segments())  # one vertical segment per value
    np.testing.assert_allclose(bars[:, :, 1].min(axis=1), stats["min"])
    np.testing.assert_allclose(bars[:, :, 1].max(axis=1), stats["max"])
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    seeds = dots.get_offsets()  # every seed drawn, next to its value
    assert len(seeds) == len(runs)
    np.testing.assert_allclose(sorted(seeds[:, 1]), sorted(runs["score"] * 100))
    assert np.all(np.abs(seeds[:, 0] - np.repeat(range(5), 3)) < 0.5)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eps", "SST-2 dev accuracy (x100)")
    check_saved(fig, tmp_path)


def test_tradeoff_marks_each_variant_at_its_median_seconds_and_score(points, tmp_path):
    fig = tradeoff_figure(points, xlabel="Training time (s)", ylabel="Dev accuracy (x100)")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    seconds = points.groupby("variant", sort=False)["seconds"].agg(["median", "min", "max"])
    scores = points.groupby("variant", sort=False)["score"].agg(["median", "min", "max"]) * 100
    drawn = median_points(ax)
    assert [label for label, _, _ in drawn] == VARIANTS
    for label, x, y in drawn:
        np.testing.assert_allclose([x[0], y[0]], [seconds.loc[label, "median"], scores.loc[label, "median"]])
    for container, variant in zip(ax.containers, VARIANTS):
        (xbar,), (ybar,) = (col.get_segments() for col in container.lines[2])
        np.testing.assert_allclose(sorted(xbar[:, 0]), seconds.loc[variant, ["min", "max"]])
        np.testing.assert_allclose(sorted(ybar[:, 1]), scores.loc[variant, ["min", "max"]])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == VARIANTS
    check_saved(fig, tmp_path)


def test_training_curves_draw_per_epoch_medians_and_the_loss_panel_below(curves, tmp_path):
    fig = training_curves_figure(curves, ylabel="Dev accuracy (x100)")
    dev, loss = fig.axes
    for ax, column, scale in ((dev, "dev_score", 100), (loss, "train_loss", 1)):
        lines = {line.get_label(): line for line in ax.lines}
        assert list(lines) == VARIANTS[:4]
        for variant, line in lines.items():
            expected = curves[curves["variant"] == variant].groupby("epoch")[column].median() * scale
            np.testing.assert_allclose(line.get_xdata(), expected.index)
            np.testing.assert_allclose(line.get_ydata(), expected)
        assert len(ax.collections) == 4  # one min-max band per variant
    assert dev.get_shared_x_axes().joined(dev, loss)
    assert (dev.get_ylabel(), loss.get_xlabel()) == ("Dev accuracy (x100)", "Epoch")
    assert len(fig.legends) == 1 and not dev.get_legend() and not loss.get_legend()
    check_saved(fig, tmp_path)


@pytest.mark.parametrize("loss", ["missing", "all NaN"])
def test_training_curves_without_loss_have_one_panel(curves, loss, tmp_path):
    curves = curves.drop(columns="train_loss") if loss == "missing" else curves.assign(train_loss=np.nan)
    fig = training_curves_figure(curves, ylabel="Dev accuracy (x100)")
    assert len(fig.axes) == 1
    check_saved(fig, tmp_path)


def test_one_seed_draws_points_without_bars_or_bands(runs, points, curves, tmp_path):
    one = {"runs": runs[runs["seed"] == 13], "points": points.groupby("variant", sort=False).head(1),
           "curves": curves[curves["seed"] == 13]}
    for fig in (ablation_figure(one["runs"], swept="eps", ylabel="y"),
                tradeoff_figure(one["points"], xlabel="s", ylabel="y")):
        for container in fig.axes[0].containers:
            assert not container.has_xerr and not container.has_yerr
        check_saved(fig, tmp_path / fig.axes[0].get_xlabel())
    fig = training_curves_figure(one["curves"], ylabel="y")
    for ax in fig.axes:
        assert len(ax.lines) == 4 and not ax.collections
    check_saved(fig, tmp_path / "curves")


def test_many_variants_get_distinct_styles_and_a_legend_within_the_column(tmp_path):
    names = [f"KD + back-translation, eps=1e-0{i}" for i in range(8)]
    points = pd.DataFrame({"variant": names, "seconds": np.geomspace(10, 1e5, 8), "score": np.linspace(0.8, 0.9, 8)})
    fig = tradeoff_figure(points, xlabel="s", ylabel="y")
    handles = fig.legends[0].legend_handles
    assert [h.get_label() for h in handles] == names
    assert len({(tuple(h.get_color()), h.get_marker()) for h in handles}) == 8
    assert len({h.get_marker() for h in handles}) == 8  # markers alone tell them apart in greyscale
    fig.canvas.draw()
    legend, ax = fig.legends[0].get_window_extent(), fig.axes[0].get_window_extent()
    assert 0 <= legend.x0 and legend.x1 <= fig.bbox.width and legend.y1 <= ax.y0  # below the axes, inside the figure
    check_saved(fig, tmp_path)


def test_interrupted_save_keeps_the_previous_figure_and_leaves_no_temporary_file(runs, tmp_path, monkeypatch):
    (tmp_path / "figure.pdf").write_bytes(b"old")
    fig = ablation_figure(runs, swept="eps", ylabel="y")

    def interrupted(handle, **kwargs):
        handle.write(b"%PDF-half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "figure")
    assert [p.name for p in tmp_path.iterdir()] == ["figure.pdf"]
    assert (tmp_path / "figure.pdf").read_bytes() == b"old"


def test_save_closes_pyplot_figures_and_keeps_dots_in_the_stem(tmp_path):
    fig, _ = plt.subplots()
    paths = save_figure(fig, tmp_path / "eps_1e-05.v2")
    assert [p.name for p in paths] == ["eps_1e-05.v2.pdf", "eps_1e-05.v2.png"]
    assert plt.get_fignums() == []


def test_style_does_not_leak_into_global_settings(runs, tmp_path):
    before = dict(matplotlib.rcParams)
    save_figure(ablation_figure(runs, swept="eps", ylabel="y"), tmp_path / "figure")
    assert dict(matplotlib.rcParams) == before


def test_missing_column_is_refused():
    with pytest.raises(ValueError, match="score"):
        ablation_figure(pd.DataFrame({"value": ["a"], "seed": [1]}), swept="eps", ylabel="y")
