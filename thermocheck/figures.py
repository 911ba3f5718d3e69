"""Figures of a measured grid, in the style of the paper's Figures 1, 3 and 4.

Four figures per :class:`~thermocheck.states.StateGrid`, each drawn only when the grid carries
the quantities it needs (non-stationary states are left out); each law's verdict has its own
figure (:mod:`thermocheck.figures_law`, for V2 the fitted minimisers):

``thermo``
    U, S(ρ) and S against T. On the linear loss ``L(w̄) = 1 + μᵀw̄`` (states with
    ``extra["loss"] == "linear"``) the exact von Mises–Fisher curves of :mod:`thermocheck.vmf`
    (κ = ‖μ‖/T) are drawn: points should lie on them.
``state_equation``
    The ideal gas law (V1): measured ``r* = sqrt(E‖w‖²)`` (fixed sphere: measured ``λ_eff``)
    against its SDE prediction and its discretization-corrected one (Appendix G), log-log.
``entropy``
    S against the logarithm of each hyperparameter, with reference slopes (Maxwell relations and
    the low-temperature VMF model).
``noise``
    The measured gradient noise σ² and its covariance's effective rank against the first
    hyperparameter (grids with noise measurements only: networks and users' loops).

Matplotlib is imported only when a figure is drawn, through its object-oriented API (Agg canvas),
so the global backend of a user's session is never changed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thermocheck import theory
from thermocheck.states import State, StateGrid

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "FigureFile", "draw", "draw_one", "entropy_figure", "noise_figure",
           "state_equation_figure", "thermo_figure"]

#: Axis labels of the hyperparameters, with their symbols.
LABELS = {"lr": "η (learning rate)", "wd": "λ (weight decay)",
          "elr": "η_eff (effective learning rate)", "radius": "r (sphere radius)"}
_SYMBOL = {"lr": "η", "wd": "λ", "elr": "η_eff", "radius": "r"}


@dataclass(frozen=True)
class FigureFile:
    """A figure written by :func:`draw`: where it lies, its title and a caption for readers."""

    kind: str
    path: Path
    title: str
    caption: str


@dataclass(frozen=True)
class _Drawn:
    figure: Figure
    title: str
    caption: str


# -- helpers --------------------------------------------------------------------------------------
def _states(grid: StateGrid, *fields: str) -> list[State] | None:
    """The stationary states, or None when fewer than two carry every field in ``fields``."""
    kept = [s for s in grid if s.stationary and all(getattr(s, f) is not None for f in fields)]
    return kept if len(kept) >= 2 else None


def _column(states: list[State], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and standard errors of the measured field ``name`` over ``states``."""
    estimates = [s.require(name) for s in states]
    return np.array([e.value for e in estimates]), np.array([e.stderr for e in estimates])


#: Margins of every figure, in inches: tick labels and an axis label on the left and at the bottom,
#: a title of up to two lines on top, a y label between panels. Fixed margins, not constrained
#: layout, which measures every text once more before drawing it: half the time of a savefig.
_LEFT, _RIGHT, _BOTTOM, _TOP, _GAP = 0.8, 0.25, 0.6, 0.7, 1.1


def _new_figure(ncols: int) -> Figure:
    """A figure of ``ncols`` panels side by side, 4.2 inches high, with the fixed margins above
    (a colour bar takes its room from the panels)."""
    from matplotlib.figure import Figure, SubplotParams

    width, height = 4.6 * ncols + 0.8, 4.2
    panel = (width - _LEFT - _RIGHT - (ncols - 1) * _GAP) / ncols
    return Figure(figsize=(width, height), subplotpars=SubplotParams(
        left=_LEFT / width, right=1 - _RIGHT / width, bottom=_BOTTOM / height,
        top=1 - _TOP / height, wspace=_GAP / panel))


def _colour_by(fig: Figure, axes: Axes | list[Axes], states: list[State], axis: str
               ) -> tuple[np.ndarray, object]:
    """log10 of the hyperparameter ``axis`` per state, and the colour map's normaliser, with a
    colour bar that names the hyperparameter."""
    from matplotlib import cm, colors

    values = np.log10([getattr(s, axis) for s in states])
    norm = colors.Normalize(values.min(), values.max() if values.max() > values.min()
                            else values.min() + 1)
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes)
    bar.set_label(f"log10 {LABELS[axis]}")
    return values, norm


def _log_axis(ax: Axes, which: str, values: np.ndarray) -> None:
    """A log scale on axis ``which`` ("x" or "y"). Over at most two decades of ``values`` it is
    labelled at 1, 2 and 5 times powers of ten in plain numbers (the default labels every minor
    tick there, and they overlap); over more, at the powers of ten only."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_minor_formatter(NullFormatter())
    if np.log10(values.max() / values.min()) <= 2:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%.3g"))


def _suptitle(fig: Figure, title: str) -> None:
    """The figure's title, wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 14)
    fig.suptitle(textwrap.fill(title, width), fontsize=10)


def _vmf_parameters(states: list[State]) -> tuple[float, float] | None:
    """``(‖μ‖, c)`` when every state ran the linear loss ``c + μᵀw̄`` with U the energy (the
    simulator's ``extra`` says so: ``loss == "linear"``, ``mu_norm``, ``loss_offset``, defaults
    1 and 1 as in the paper), else None: no closed form to draw."""
    params = {(float(s.extra.get("mu_norm", 1.0)), float(s.extra.get("loss_offset", 1.0)))
              for s in states if s.energy_is_loss and s.extra.get("loss") == "linear"}
    linear = all(s.energy_is_loss and s.extra.get("loss") == "linear" for s in states)
    return params.pop() if linear and len(params) == 1 else None


def _lines(states: list[State], along: str, fixed: str) -> list[tuple[float, Any, list[State]]]:
    """The states grouped by the value of ``fixed`` (increasing), each group sorted along
    ``along``, with a viridis colour per group (dark to light)."""
    from matplotlib import cm

    groups: dict[float, list[State]] = {}
    for s in states:
        groups.setdefault(getattr(s, fixed), []).append(s)
    keys = sorted(groups)
    return [(key, cm.viridis(n / max(len(keys) - 1, 1)),
             sorted(groups[key], key=lambda s: getattr(s, along))) for n, key in enumerate(keys)]


def _title(grid: StateGrid) -> str:
    return f"{grid.protocol}, {grid.substrate}, d = {grid.d}"


# -- U, S(ρ), S against T -------------------------------------------------------------------------
def thermo_figure(grid: StateGrid) -> _Drawn | None:
    """U, S(ρ) and S against T; the exact VMF curves on the linear loss (Figure 1a style)."""
    states = _states(grid, "loss", "sphere_entropy")
    if states is None:
        return None
    has_total = all(s.protocol == "fixed_sphere" or s.mean_radius is not None for s in states)
    vmf_curve = _vmf_parameters(states)
    d = grid.d
    T = np.array([s.temperature for s in states])
    fig = _new_figure(3 if has_total else 2)
    axes = fig.subplots(1, 3 if has_total else 2)
    colour_axis = grid.axes[1]
    colour, norm = _colour_by(fig, list(axes), states, colour_axis)
    panels: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("U = E[L(w̄)] (mean training loss)", *_column(states, "loss")),
        ("S(ρ) (entropy on the unit sphere, nats)", *_column(states, "sphere_entropy")),
    ]
    if has_total:
        total = [s.entropy for s in states]
        panels.append(("S = S(ρ) + (d−1) log E‖w‖ (nats)", np.array([e.value for e in total]),
                       np.array([e.stderr for e in total])))
    t_line = np.geomspace(T.min(), T.max(), 200)
    for ax, (ylabel, y, err) in zip(axes, panels, strict=True):
        ax.errorbar(T, y, yerr=err, fmt="none", ecolor="0.6", elinewidth=0.8, zorder=1)
        ax.scatter(T, y, c=colour, norm=norm, cmap="viridis", s=18, zorder=2,
                   label=f"measured (colour: {_SYMBOL[colour_axis]})")
        _log_axis(ax, "x", T)
        ax.set_xlabel("T (temperature, from the state equation)")
        ax.set_ylabel(ylabel)
    if vmf_curve is not None:
        from thermocheck import vmf

        # L = c + μᵀw̄ with |μ| = m: VMF with κ = m/T, U = c − m A_d(κ) = c − m + m (1 − A_d(κ)).
        m, c = vmf_curve
        kappa = m / t_line
        axes[0].plot(t_line, c - m + m * np.asarray(vmf.mean_loss(d, kappa)), "k-", lw=1.2,
                     label="VMF exact, κ = ‖μ‖/T")
        axes[0].plot(t_line, c - m + (d - 1) * t_line / 2, "k:", lw=1, label="low T: (d−1)T/2")
        axes[1].plot(t_line, vmf.entropy(d, kappa), "k-", lw=1.2, label="VMF exact, κ = ‖μ‖/T")
        axes[1].plot(t_line, (d - 1) / 2 * np.log(2 * math.pi * math.e * t_line / m), "k:",
                     lw=1, label="low T: (d−1)/2 log(2πeT/‖μ‖)")
        if has_total:
            predicted = [float(vmf.entropy(d, m / s.temperature)) + (d - 1) * math.log(_radius(s))
                         for s in states]
            radius = "r: the sphere's" if grid.protocol == "fixed_sphere" else "r* predicted (SDE)"
            axes[2].scatter(T, predicted, marker="x", color="k", s=20,
                            label=f"VMF S(ρ) + (d−1) log r, {radius}")
    for ax in axes:
        ax.legend(fontsize=7)
    match = ("points should lie on the VMF curves" if vmf_curve is not None
             else "no closed form for this loss: measurements only")
    title = f"U, S(ρ) and S against T ({_title(grid)}): {match}"
    _suptitle(fig, title)
    caption = ("Mean training loss U, entropy on the unit sphere S(ρ) and total entropy S of each "
               "stationary state against its temperature T; error bars are one standard error. "
               + ("Solid lines: exact von Mises–Fisher values for L(w̄) = c + μᵀw̄ with κ = ‖μ‖/T; "
                  "dotted: low-temperature asymptotes; crosses: the VMF entropy on a sphere of the "
                  "predicted radius." if vmf_curve is not None
                  else "No closed form is drawn for this loss."))
    return _Drawn(fig, title, caption)


def _radius(s: State) -> float:
    """The predicted stationary radius (SDE limit) of a state."""
    return float(theory.stationary_radius(s.protocol, s.d, s.sigma2.value, lr=s.lr, wd=s.wd,
                                          elr=s.elr, radius=s.radius))


# -- the state equation (V1) ----------------------------------------------------------------------
def state_equation_figure(grid: StateGrid) -> _Drawn | None:
    """Measured r* (or λ_eff on the sphere) against the SDE and the corrected prediction."""
    sphere = grid.protocol == "fixed_sphere"
    states = _states(grid, "lambda_eff" if sphere else "sq_norm")
    if states is None:
        return None

    def predicted(s: State, grad_sq: float) -> float:
        if sphere:
            hp = s.hyperparameters
            return float(theory.effective_wd(s.d, s.sigma2.value, elr=hp["elr"],
                                             radius=hp["radius"], grad_sq=grad_sq))
        return float(theory.stationary_radius(s.protocol, s.d, s.sigma2.value, lr=s.lr, wd=s.wd,
                                              elr=s.elr, grad_sq=grad_sq))

    if sphere:
        measured, err = _column(states, "lambda_eff")
        name, how = "λ_eff (effective weight decay)", "Eq. 83"
        eqs = ("Eq. 84", "Eq. 121")
    else:
        sq, sq_err = _column(states, "sq_norm")
        measured = np.sqrt(sq)
        err = sq_err / (2 * measured)
        name, how = "r* (stationary radius)", "sqrt(E‖w‖²)"
        eqs = ("Eq. 12" if grid.protocol == "fixed_elr" else "Eq. 19", "Eq. 119–120")
    fig = _new_figure(1)
    ax = fig.subplots()
    series = [("SDE prediction, " + eqs[0], "o", [predicted(s, 0.0) for s in states])]
    if all(s.grad_sq is not None for s in states):
        series.append(("discretization-corrected, " + eqs[1], "^",
                       [predicted(s, s.require("grad_sq").value) for s in states]))
    for label, marker, x in series:
        ax.errorbar(x, measured, yerr=err, fmt=marker, ms=4, mfc="none", lw=0.8, label=label)
    every = np.concatenate([measured, *[np.asarray(x) for _, _, x in series]])
    lo, hi = every.min() / 1.2, every.max() * 1.2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="measured = predicted")
    _log_axis(ax, "x", np.array([lo, hi]))
    _log_axis(ax, "y", np.array([lo, hi]))
    ax.set_xlabel(f"predicted {name}, from the state equation")
    ax.set_ylabel(f"measured {name} = {how}")
    ax.legend(fontsize=8)
    title = f"Ideal gas law (V1), {_title(grid)}: points should lie on the diagonal"
    _suptitle(fig, title)
    caption = (f"Measured {name} ({how}) of each stationary state against the state equation "
               "pV = RT: the SDE prediction (circles) and, where E‖∇L(w̄)‖² was measured, the "
               "discretization-corrected one (triangles). Error bars: one standard error.")
    return _Drawn(fig, title, caption)


# -- entropy against the hyperparameters (V3) -----------------------------------------------------
def _reference_slopes(protocol: str, d: int) -> tuple[tuple[float, str], tuple[float, str]]:
    """dS/d log x at fixed y and dS/d log y at fixed x, with where each comes from."""
    R = theory.gas_constant(d)
    return {
        "fixed_lr": ((R, "VMF low T, Eq. 29"), (0.0, "VMF low T, Eq. 29")),
        "fixed_elr": ((2 * R, "VMF low T"), (-R, "Maxwell relation, Eq. 85")),
        "fixed_sphere": ((R, "VMF low T"), (2 * R, "Maxwell relation, (∂S/∂V)_T = R/V")),
    }[protocol]


def entropy_figure(grid: StateGrid) -> _Drawn | None:
    """S against log x at fixed y and against log y at fixed x, with reference slopes."""
    states = _states(grid, "sphere_entropy",
                     *(() if grid.protocol == "fixed_sphere" else ("mean_radius",)))
    if states is None:
        return None

    from matplotlib import patheffects

    fig = _new_figure(2)
    axes = list(fig.subplots(1, 2))
    slopes = _reference_slopes(grid.protocol, grid.d)
    pairs = ((grid.axes[0], grid.axes[1]), (grid.axes[1], grid.axes[0]))
    for ax, (along, fixed), (slope, source) in zip(axes, pairs, slopes, strict=True):
        lines = _lines(states, along, fixed)
        for n, (key, colour, line) in enumerate(lines):
            if len(line) < 2:
                continue
            x = np.log([getattr(s, along) for s in line])
            y = np.array([s.entropy.value for s in line])
            ax.errorbar(x, y, yerr=[s.entropy.stderr for s in line], fmt="o-", ms=3, lw=1,
                        color=colour, label=f"measured, {_SYMBOL[fixed]} = {key:.2g}"
                        if n in (0, len(lines) - 1) else None)
            # drawn over the data (zorder), black with a white halo: visible on any line colour
            ax.plot(x, y.mean() + slope * (x - x.mean()), "--", color="k", lw=1.2, zorder=4,
                    path_effects=[patheffects.withStroke(linewidth=2.6, foreground="w")],
                    label=f"reference slope {slope:.4g} ({source})" if n == 0 else None)
        ax.set_xlabel(f"ln {LABELS[along]}")
        ax.set_ylabel("S (total entropy, nats)")
        ax.set_title(f"at fixed {_SYMBOL[fixed]} (one line per value)", fontsize=9)
        if ax.get_legend_handles_labels()[0]:  # no line has two points on a sparse grid
            ax.legend(fontsize=7)
    title = (f"Entropy against log {_SYMBOL[grid.axes[0]]} and log {_SYMBOL[grid.axes[1]]} "
             f"({_title(grid)}): "
             "lines should run parallel to the dashed reference slopes")
    _suptitle(fig, title)
    caption = ("Total entropy S of the stationary states against the logarithm of one "
               "hyperparameter, one line per value of the other (dark to light: increasing). "
               "Dashed black, drawn over the data: the predicted slope through each line's "
               "centre; the exact ones are the Maxwell relations, the 'VMF low T' ones hold for "
               "the linear loss at small T only. Error bars: one standard error.")
    return _Drawn(fig, title, caption)


# -- gradient noise across the grid ----------------------------------------------------------------
def noise_figure(grid: StateGrid) -> _Drawn | None:
    """σ² and, where measured, the noise covariance's effective rank over d − 1 against log x,
    one line per y (grids with noise measurements only: networks and users' loops)."""
    states = _states(grid, "sigma2")
    if states is None or not all("eff_rank_over_d" in s.extra for s in states):
        return None
    ranked = all(s.extra["eff_rank_over_d"] is not None for s in states)
    fig = _new_figure(2 if ranked else 1)
    axes = list(fig.subplots(1, 2)) if ranked else [fig.subplots(1, 1)]
    along, fixed = grid.axes
    for key, colour, line in _lines(states, along, fixed):
        x = np.array([getattr(s, along) for s in line])
        label = f"{_SYMBOL[fixed]} = {key:.2g}"
        axes[0].errorbar(x, [s.require("sigma2").value for s in line],
                         yerr=[s.require("sigma2").stderr for s in line], fmt="o-", ms=3, lw=1,
                         color=colour, label=label)
        if ranked:
            axes[1].plot(x, [s.extra["eff_rank_over_d"] for s in line], "o-", ms=3, lw=1,
                         color=colour, label=label)
    for ax, ylabel in zip(axes, ("σ² = Tr Σ / (d − 1)", "effective rank / (d − 1)"), strict=False):
        _log_axis(ax, "x", np.array([getattr(s, along) for s in states]))
        ax.set_xlabel(LABELS[along])
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    title = f"Gradient noise across the grid ({_title(grid)})"
    _suptitle(fig, title)
    caption = ("Left: the noise scale σ² of each stationary state, which sets the temperature; "
               "error bars: one standard error. Right (when the noise measurements kept two "
               "deviations or more): the participation ratio (Tr Σ)²/Tr(Σ²) of the gradient-noise "
               "covariance over d − 1: 1 for isotropic noise, as the simulator assumes; networks "
               "sit far below.")
    return _Drawn(fig, title, caption)


#: Every figure, by kind, in the order they appear in a report.
FIGURES: dict[str, Callable[[StateGrid], _Drawn | None]] = {
    "thermo": thermo_figure,
    "state_equation": state_equation_figure,
    "entropy": entropy_figure,
    "noise": noise_figure,
}


def draw_one(grid: StateGrid, kind: str, folder: str | Path, *, name: str) -> FigureFile | None:
    """Draw the figure ``kind`` of :data:`FIGURES` into ``folder`` as ``<name>-<kind>.png``;
    None when the grid lacks its data. Raises whatever drawing raised."""
    drawn = FIGURES[kind](grid)
    if drawn is None:
        return None
    path = Path(folder) / f"{name}-{kind}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn.figure.savefig(path, dpi=110)
    return FigureFile(kind, path, drawn.title, drawn.caption)


def draw(grid: StateGrid, folder: str | Path, *, name: str) -> tuple[list[FigureFile], list[str]]:
    """Draw every figure the grid has data for into ``folder`` as ``<name>-<kind>.png``.

    Returns the figures written and, for each figure that raised while being drawn, a message
    (a figure is never worth losing a report over; the caller shows the messages).
    """
    made: list[FigureFile] = []
    errors: list[str] = []
    for kind in FIGURES:
        try:
            figure = draw_one(grid, kind, folder, name=name)
        except Exception as err:  # a figure is never worth losing a report over
            errors.append(f"{kind}: {type(err).__name__}: {err}")
            continue
        if figure is not None:
            made.append(figure)
    return made, errors
