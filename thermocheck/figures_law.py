"""Figures of a law result: what the law compared, with its band, where it held.

One figure per :class:`~thermocheck.results.LawResult`, drawn from its ``details`` alone (so a
report read back from disk draws the same), in the units of its headline
(:mod:`thermocheck.headline`):

``deviation``
    Every law judged point by point: the deviation from the prediction (percent of the law's
    scale, e.g. of the predicted ``E‖w‖²`` for V1) against the first hyperparameter on a log axis,
    one colour per value of the second, error bars of one standard error, and the band the verdict
    allowed (``z·s.e. + allowance``) as a pale bar behind each point. Points outside are red.
``ratios``
    The Maxwell relation fitted as a surface (Eq. 34; Eq. 23, 85): each coefficient ratio with one
    and ``z`` standard errors against its prediction, and its band.
``minimiser``
    Potential minimisation (V2, Eq. 22): on the grid of indices, each point's fitted minimiser of
    ``G_*`` (``F_*`` on the sphere) as an offset in grid steps, with the rectangle the verdict
    allowed around the point (its confidence region: ``z·s.e. + allowance`` per axis). Points
    judged by the one-sided pointwise comparison are marked.

Matplotlib is used through its object-oriented API, as in :mod:`thermocheck.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermocheck import theory
from thermocheck.figures import LABELS, FigureFile, _log_axis, _new_figure, _suptitle
from thermocheck.headline import headline, point_units
from thermocheck.results import LawResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["deviation_figure", "draw_law_figure", "minimiser_figure",
           "ratios_figure"]

_OUTSIDE = "tab:red"


def _compared(r: LawResult) -> list[Mapping[str, Any]]:
    """The details with finite observed, expected, standard error and tolerance."""
    keys = ("observed", "expected", "stderr", "tolerance", "residual")
    return [p for p in r.details
            if all(isinstance(p.get(k), (int, float)) and math.isfinite(p[k]) for k in keys)]


def _parse(at: str) -> dict[str, float]:
    """``"lr=0.01, wd=0.001"`` (a state's place, :func:`~thermocheck.laws._common.where`) as a
    mapping; empty when it is not of that form."""
    out: dict[str, float] = {}
    for part in str(at).split(","):
        name, _, value = part.strip().partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            return {}
    return out


def _position(p: Mapping[str, Any], axes: tuple[str, str]) -> dict[str, float]:
    """A detail's hyperparameters among ``axes``: its own, or the geometric middle of a segment's
    ends (first law); empty when it has neither."""
    own = {a: float(p[a]) for a in axes if isinstance(p.get(a), (int, float))}
    if own:
        return own
    ends = [_parse(p.get(key, "")) for key in ("from", "to")]
    return {a: math.sqrt(ends[0][a] * ends[1][a]) for a in axes
            if all(a in e for e in ends)}


def _title(r: LawResult) -> str:
    dim = f", d = {r.d}" if r.d is not None else ""
    return f"{r.law}, {r.protocol} ({r.substrate}{dim})"


# -- deviation from the prediction against the hyperparameters ------------------------------------
def deviation_figure(r: LawResult) -> tuple[Figure, str, str] | None:
    """The deviations of a point-by-point law against the hyperparameters (module docstring);
    None when fewer than two compared points carry a place on the grid."""
    from matplotlib import cm, colors

    axes = theory.AXES.get(r.protocol)
    if axes is None:
        return None
    placed = [(p, pos) for p in _compared(r) if (pos := _position(p, axes))]
    present = [a for a in axes if all(a in pos for _, pos in placed)]
    if len(placed) < 2 or not present:
        return None
    units = {point_units(p, r.law)[1] for p, _ in placed}
    if len(units) != 1:
        return None
    unit = units.pop()
    factor = 100.0 if unit == "relative" else 1.0
    along, colour_axis = present[0], (present[1] if len(present) > 1 else None)
    x = np.array([pos[along] for _, pos in placed])
    second = (np.log10([pos[colour_axis] for _, pos in placed]) if colour_axis
              else np.zeros(len(placed)))
    fig = _new_figure(1)
    ax = fig.subplots()
    norm = colors.Normalize(second.min(), max(second.max(), second.min() + 1e-12))
    # spread the series sideways by a fraction of a grid step so their bars do not overlap
    steps = np.diff(np.unique(np.log10(x)))
    spread = 0.3 * float(steps.min()) if steps.size else 0.0
    offset = 10 ** (spread * (norm(second) - 0.5))
    # one artist per kind of mark, not per point: a paper grid has hundreds of points
    scale = factor / np.array([point_units(p, r.law)[0] for p, _ in placed])
    dev, band, err = (scale * np.array([p[key] for p, _ in placed], dtype=float)
                      for key in ("residual", "tolerance", "stderr"))
    one_sided = np.array([bool(p.get("one_sided")) for p, _ in placed])
    bad = np.array([p.get("ok") is False for p, _ in placed])
    at, colour = x * offset, cm.viridis(norm(second))
    ax.vlines(at, np.where(one_sided, dev - band, -band), band, colors=colour, lw=5, alpha=0.18,
              zorder=1)
    ax.vlines(at, dev - err, dev + err, lw=0.8, zorder=3,
              colors=[tuple(c) for c in np.where(bad[:, None], colors.to_rgba(_OUTSIDE), colour)])
    ax.scatter(at[~bad], dev[~bad], s=9, c=colour[~bad], zorder=3)
    ax.scatter(at[bad], dev[bad], s=25, marker="x", c=_OUTSIDE, zorder=3)
    ax.axhline(0.0, color="k", lw=1, zorder=2, label="prediction (deviation 0)")
    _log_axis(ax, "x", x)
    ax.set_xlabel(LABELS.get(along, along))
    what = headline(r).quantity
    ax.set_ylabel("deviation (%)" if unit == "relative" else f"deviation ({unit})")
    if colour_axis:
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax)
        bar.set_label(f"log10 {LABELS.get(colour_axis, colour_axis)}")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(handles=[Line2D([], [], color="k", lw=1, label="prediction"),
                       Patch(color="0.5", alpha=0.3, label="band of the verdict (z·s.e. + "
                                                           "allowance)"),
                       Line2D([], [], color=_OUTSIDE, marker="x", ls="none",
                              label="outside the band")], fontsize=7)
    title = f"{_title(r)}: deviation from the prediction; points should sit inside their bands"
    _suptitle(fig, title)
    caption = (f"Deviation of each compared point from the law's prediction: {what}. Error bars: "
               "one standard error; pale bars: the band the verdict allowed at that point "
               "(z standard errors plus the model allowance; a one-sided band bounds the excess "
               "only); red crosses: outside the band. Colour: the second hyperparameter; points "
               "of one x are spread sideways by a fraction of a grid step.")
    return fig, title, caption


# -- the fitted Maxwell ratios --------------------------------------------------------------------
def ratios_figure(r: LawResult) -> tuple[Figure, str, str] | None:
    """The coefficient ratios of the fitted surface against their predictions (module
    docstring); None without two compared ratios."""
    points = _compared(r)
    if r.law != "maxwell" or r.protocol == "fixed_sphere" or len(points) < 2:
        return None
    fig = _new_figure(1)
    ax = fig.subplots()
    ys = np.arange(len(points))[::-1]
    for y, p in zip(ys, points, strict=True):
        bad = p.get("ok") is False
        ax.barh(y, 2 * p["tolerance"], left=p["expected"] - p["tolerance"], height=0.5,
                color="0.6", alpha=0.35, zorder=1)
        ax.plot([p["expected"]] * 2, [y - 0.3, y + 0.3], "k-", lw=1.5, zorder=2)
        ax.errorbar(p["observed"], y, xerr=p["stderr"], fmt="x" if bad else "o", ms=6,
                    color=_OUTSIDE if bad else "tab:blue", capsize=3, zorder=3)
    labels = [str(p["quantity"]) for p in points]
    ax.set_yticks(ys, labels)
    # room for the longest tick label (about 0.08 inch a character at the default size)
    fig.subplots_adjust(left=(0.3 + 0.08 * max(map(len, labels))) / fig.get_figwidth())
    ax.set_xlabel("fitted coefficient ratio (Eq. 34, divided by R)")
    title = f"{_title(r)}: fitted ratios should sit on their predictions (black)"
    _suptitle(fig, title)
    caption = ("Ratios of the coefficients of the quadratic entropy surface of Eq. 34 (Table 4), "
               "each with one standard error from the fit's covariance; black tick: the Maxwell "
               "relation's prediction; grey: the band the verdict allowed (z standard errors plus "
               "the model allowance).")
    return fig, title, caption


# -- the V2 minimiser map -------------------------------------------------------------------------
def minimiser_figure(r: LawResult) -> tuple[Figure, str, str] | None:
    """Each point's fitted minimiser offset with its band, on the grid of indices (module
    docstring); None without fitted minimisers."""
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    axes = theory.AXES.get(r.protocol)
    fitted = [p for p in _compared(r) if p.get("method") == "fitted minimiser"]
    if r.law != "potential_minimum" or axes is None or not fitted:
        return None
    placed = [p for p in r.details if len(_position(p, axes)) == 2]
    values = [np.unique([float(p[a]) for p in placed]) for a in axes]
    by_point: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for p in fitted:
        key = tuple(int(np.searchsorted(v, float(p[a]))) for v, a in zip(values, axes,
                                                                          strict=True))
        by_point.setdefault(key, []).append(p)  # type: ignore[arg-type]
    fig = _new_figure(1)
    ax = fig.subplots()
    boxes, arrows, tips, colours = [], [], [], []  # one artist per kind of mark
    for (i, j), parts in by_point.items():
        offset, band = [0.0, 0.0], [0.0, 0.0]
        for p in parts:
            k = 0 if str(p["quantity"]).endswith(f"{axes[0]} (steps)") else 1
            offset[k], band[k] = float(p["observed"]), float(p["tolerance"])
        height = band[1] if band[1] > 0 else 0.15
        boxes.append(Rectangle((i - band[0], j - height), 2 * band[0], 2 * height))
        arrows.append([(i, j), (i + offset[0], j + offset[1])])
        tips.append(arrows[-1][1])
        colours.append(_OUTSIDE if any(p.get("ok") is False for p in parts) else "tab:green")
    ax.add_collection(PatchCollection(boxes, facecolors=colours, edgecolors=colours, alpha=0.12,
                                      lw=0.5))
    ax.add_collection(LineCollection(arrows, colors=colours, lw=0.8))
    tip_x, tip_y = np.transpose(tips)
    ax.scatter(tip_x, tip_y, s=9, c=colours)
    pointwise = [p for p in _compared(r) if p.get("method") == "pointwise"]
    if pointwise:
        ij = [[int(np.searchsorted(v, float(p[a]))) for v, a in zip(values, axes, strict=True)]
              for p in pointwise]
        at_x, at_y = np.transpose(ij)
        ax.scatter(at_x, at_y, s=16, marker="s", facecolors="none",
                   edgecolors=[_OUTSIDE if p.get("ok") is False else "0.4" for p in pointwise])
    for v, set_ticks in ((values[0], ax.set_xticks), (values[1], ax.set_yticks)):
        ticks = np.unique(np.linspace(0, v.size - 1, min(v.size, 7)).round().astype(int))
        set_ticks(ticks, [f"{v[t]:.2g}" for t in ticks])
    ax.set_xlim(-1, values[0].size)
    ax.set_ylim(-1, values[1].size)
    ax.set_xlabel(LABELS.get(axes[0], axes[0]))
    ax.set_ylabel(LABELS.get(axes[1], axes[1]))
    ax.set_aspect("equal" if r.protocol != "fixed_sphere" else "auto")
    potential = "F_*" if r.protocol == "fixed_sphere" else "G_*"
    title = (f"{_title(r)}: the fitted minimiser of {potential} (dot) should lie inside the "
             "rectangle around its point")
    _suptitle(fig, title)
    caption = (f"For every interior grid point, the minimiser of the quadratic fitted to "
               f"{potential} around it (Eq. 22), drawn as an offset in grid steps from the point; "
               "the rectangle is the region the verdict allowed (z standard errors plus the model "
               "allowance, per axis). Green: inside; red: outside. Open squares: points judged by "
               "the one-sided pointwise comparison instead.")
    return fig, title, caption


def draw_law_figure(r: LawResult, path: str | Path) -> FigureFile | None:
    """Draw the figure of ``r`` (the first of ``ratios``, ``minimiser``, ``deviation`` that
    applies) into ``path`` (PNG); None when no figure applies."""
    for kind, build in (("ratios", ratios_figure), ("minimiser", minimiser_figure),
                        ("deviation", deviation_figure)):
        drawn = build(r)
        if drawn is not None:
            fig, title, caption = drawn
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
            return FigureFile(kind, path, title, caption)
    return None
