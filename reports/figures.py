"""Paper-ready figures from tidy run tables: ablations, cost/score trade-offs and training curves.

Every figure is one column of a two-column paper (ACL, AAAI) wide, drawn in one style (seaborn's
"paper" context, the colour-blind palette, 8 pt text, TrueType fonts in PDFs as venues require),
with each variant told apart by both colour and marker so the figures also read in greyscale.
Scores come in 0-1 units and are plotted x100 (the GLUE convention); every summary is the median
over seeds with the min-max spread. Those are computed here with pandas and drawn with matplotlib
rather than by seaborn's pointplot/lineplot (`estimator="median", errorbar=("pi", 100)` is the same
statistic): the trade-off needs error bars in both x and y, which seaborn does not draw, and one way
of computing them keeps all three figures in step with the tables. The style is applied through a
context, so importing this module leaves matplotlib's global settings alone, and figures are built
on the Agg canvas directly, so nothing needs a display and no figure stays registered with pyplot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from bench.pipeline.storage import atomic_file

COLUMN_WIDTH_IN = 3.25  # one column of a two-column ACL/AAAI paper
HEIGHT_IN = 2.4
DPI = 300

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
_RC = {
    **sns.axes_style("ticks"),
    **sns.plotting_context("paper"),
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.title_fontsize": 8,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "axes.grid.axis": "y", "grid.color": ".9",
    "pdf.fonttype": 42, "ps.fonttype": 42,
}
# Matplotlib stamps PDFs with the time they were written; without it a re-run report is byte-identical.
_METADATA = {"pdf": {"CreationDate": None}, "png": {}}


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write `STEM.pdf` and `STEM.png` (at DPI) at the figure's exact size, each atomically, and close it."""
    stem = Path(stem)
    paths = [stem.parent / f"{stem.name}.{kind}" for kind in ("pdf", "png")]
    try:
        with _style():
            for path in paths:
                kind = path.suffix[1:]
                with atomic_file(path, "wb") as handle:
                    fig.savefig(handle, format=kind, dpi=DPI, metadata=_METADATA[kind])
    finally:
        plt.close(fig)
    return paths


def ablation_figure(runs: pd.DataFrame, *, swept: str, ylabel: str) -> Figure:
    """One task's ablation: per value of the swept parameter (columns `value`, `seed`, `score`), the median
    over seeds x100 with its min-max bar, and each seed as a small dot beside it so the reader sees n."""
    _require(runs, ["value", "seed", "score"])
    runs = runs.assign(value=runs["value"].astype(str), score=runs["score"] * 100)
    stats = _spread(runs, "value", "score")
    position = pd.Series(np.arange(len(stats)), index=stats.index)
    seeds = pd.unique(runs["seed"])
    # Seeds sit just right of the median bar, each seed at the same offset under every value.
    offset = pd.Series(0.2 + 0.1 * (np.arange(len(seeds)) + 0.5) / len(seeds), index=seeds)
    color, marker = sns.color_palette("colorblind")[0], _MARKERS[0]
    with _style():
        fig = _figure(HEIGHT_IN)
        ax = fig.add_subplot()
        ax.scatter(position[runs["value"]] + offset[runs["seed"]].to_numpy(), runs["score"], s=6,
                   color=color, alpha=0.45, linewidths=0, zorder=2)
        ax.errorbar(position, stats["median"], yerr=_bars(stats), fmt=marker, color=color, capsize=2, zorder=3)
        ax.set_xticks(position, labels=stats.index)
        ax.set_xlim(-0.5, len(stats) - 0.5)
        ax.set(xlabel=swept, ylabel=ylabel)
        _fit_tick_labels(ax)
    return fig


def tradeoff_figure(points: pd.DataFrame, *, xlabel: str, ylabel: str) -> Figure:
    """Dev score against wall-clock, one marker per `variant` at (median `seconds`, median `score` x100)
    with min-max bars in both directions over its rows; seconds on a log scale; the legend below the axes."""
    _require(points, ["variant", "seconds", "score"])
    with _style():
        fig = _figure(HEIGHT_IN)
        ax = fig.add_subplot()
        styles = _median_markers(ax, points.assign(score=points["score"] * 100), "seconds", "score")
        ax.set_xscale("log")
        _tick_seconds(ax)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, axis="x", which="major")
        _add_legend(fig, styles, line=False)
    return fig


def robustness_figure(points: pd.DataFrame, *, xlabel: str, ylabel: str) -> Figure:
    """Accuracy under attack against dev score, one marker per `variant` at (median `score`, median
    `attacked`), both x100, with min-max bars over its seeds; the legend below the axes."""
    _require(points, ["variant", "score", "attacked"])
    with _style():
        fig = _figure(HEIGHT_IN)
        ax = fig.add_subplot()
        styles = _median_markers(ax, points.assign(score=points["score"] * 100, attacked=points["attacked"] * 100),
                                 "score", "attacked")
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(True)
        _add_legend(fig, styles, line=False)
    return fig


def _median_markers(ax, points: pd.DataFrame, x: str, y: str) -> dict:
    """One marker per variant at the medians of columns `x` and `y`, with min-max bars; returns the styles."""
    xs, ys = _spread(points, "variant", x), _spread(points, "variant", y)
    styles = _styles(xs.index)
    for variant, (color, marker) in styles.items():
        at_x, at_y = xs.loc[[variant]], ys.loc[[variant]]
        ax.errorbar(at_x["median"], at_y["median"], xerr=_bars(at_x), yerr=_bars(at_y), fmt=marker, color=color,
                    capsize=2, label=variant)
    return styles


def training_curves_figure(curves: pd.DataFrame, *, ylabel: str) -> Figure:
    """Dev score x100 against `epoch`, one line per `variant` (median over seeds, min-max band); when
    `train_loss` has any values, a second panel below with the training loss on the same epochs."""
    _require(curves, ["variant", "seed", "epoch", "dev_score"])
    panels = [("dev_score", ylabel, 100)]
    if "train_loss" in curves and curves["train_loss"].notna().any():
        panels.append(("train_loss", "Training loss", 1))
    styles = _styles(pd.unique(curves["variant"]))
    with _style():
        fig = _figure(HEIGHT_IN if len(panels) == 1 else 2 * HEIGHT_IN * 0.75)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (column, label, scale) in zip(axes, panels):
            _draw_curves(ax, curves.assign(**{column: curves[column] * scale}), column, styles)
            ax.set_ylabel(label)
        axes[-1].set_xlabel("Epoch")
        _add_legend(fig, styles, line=True)
    return fig


@contextmanager
def _style() -> Iterator[None]:
    with plt.rc_context(_RC):
        yield


def _require(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [column for column in columns if column not in frame]
    if missing or frame.empty:
        raise ValueError(f"need a non-empty table with columns {columns}; missing {missing}, {len(frame)} rows")


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(COLUMN_WIDTH_IN, _whole_pixels(height)), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with before saving
    return fig


def _whole_pixels(height: float) -> float:
    """`height` rounded to whole pixels at DPI, plus a quarter pixel: Agg truncates the pixel size, and
    k / DPI * DPI can come out a hair under k."""
    return (round(height * DPI) + 0.25) / DPI


def _styles(variants: Sequence[str]) -> dict[str, tuple[tuple[float, float, float], str]]:
    """A colour and a marker for each variant, in order."""
    colors = sns.color_palette("colorblind", len(variants))
    return {variant: (colors[i], _MARKERS[i % len(_MARKERS)]) for i, variant in enumerate(variants)}


def _spread(frame: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """Median, min and max of `column` per group, groups in order of first appearance."""
    return frame.groupby(by, sort=False)[column].agg(["median", "min", "max"])


def _bars(stats: pd.DataFrame) -> np.ndarray | None:
    """Error bar lengths from the median down to the min and up to the max; none where every spread is zero."""
    if not (stats["max"] > stats["min"]).any():
        return None
    return np.vstack([stats["median"] - stats["min"], stats["max"] - stats["median"]])


def _draw_curves(ax: Axes, curves: pd.DataFrame, column: str, styles: dict) -> None:
    stats = _spread(curves.dropna(subset=[column]), ["variant", "epoch"], column)
    for variant, (color, marker) in styles.items():
        if variant not in stats.index.get_level_values("variant"):
            continue
        line = stats.loc[variant].sort_index()
        # Up to about ten markers a line: enough to tell lines apart in greyscale, too few to blot them.
        ax.plot(line.index, line["median"], color=color, marker=marker, markersize=3.5,
                markevery=max(1, round(len(line) / 10)), label=variant)
        if (line["max"] > line["min"]).any():
            ax.fill_between(line.index, line["min"], line["max"], color=color, alpha=0.2, linewidth=0)


def _add_legend(fig: Figure, styles: dict, *, line: bool) -> None:
    """One legend for the figure, below the axes, in as many columns as fit the width; the figure grows
    by the legend's height so the axes keep the same size whatever the number of variants."""
    handles = [Line2D([], [], color=color, marker=marker, linestyle="-" if line else "none", label=variant)
               for variant, (color, marker) in styles.items()]
    renderer = fig.canvas.get_renderer()
    for ncols in range(min(len(handles), 4), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)
        if ncols == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width:
            break
        legend.remove()
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, _whole_pixels(height + legend.get_window_extent(renderer).height / fig.dpi))


def _tick_seconds(ax: Axes) -> None:
    """Label a log-scaled seconds axis with plain numbers at powers of ten (wide spans), at 1, 2 and 5 x 10^k
    (about a decade) or at a few round steps (narrower); matplotlib's default labels minor ticks that collide."""
    low, high = ax.get_xlim()
    decades = np.log10(high / low)
    locator = LogLocator() if decades > 2 else LogLocator(subs=(1, 2, 5)) if decades > 0.7 else MaxNLocator(4)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda seconds, _: f"{seconds:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _fit_tick_labels(ax: Axes) -> None:
    """Slant the x tick labels when side by side they would not fit under the axes."""
    renderer = ax.figure.canvas.get_renderer()
    labels = ax.get_xticklabels()
    if sum(label.get_window_extent(renderer).width for label in labels) > 0.8 * ax.bbox.width:
        ax.tick_params(axis="x", labelrotation=30)
        for label in labels:
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
