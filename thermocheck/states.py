"""Measured stationary states and grids of them: what substrates produce and laws consume.

A :class:`State` is one stationary measurement: the protocol, the dimension ``d``, the
hyperparameters, and the measured quantities, each an :class:`Estimate` (value, standard error,
sample count). A :class:`StateGrid` holds the states of one protocol and one ``d`` on a grid of
two hyperparameters (``theory.AXES``). Users fill them from their own logs; both round-trip through
JSON with a ``schema_version``.

Stationarity is judged per measured series (:data:`SERIES`): a state records which series reached
stationarity (``stationary_series``) and whether its run diverged, so that each law keeps the states
that are stationary in the quantities it needs. Input is typed strictly: flags are booleans,
numbers are real numbers (never strings), radii and squared norms are not negative.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.atomic import atomic_write_text
from thermocheck.errors import (
    GridError,
    InvalidParameterError,
    ParameterTypeError,
    StateNotFoundError,
    ThermocheckError,
    check_dimension,
    check_positive,
)
from thermocheck.optimizers import check_optimizer, momentum_factor

__all__ = [
    "HYPERPARAMETERS",
    "MEASURED",
    "SCHEMA_VERSION",
    "SERIES",
    "Estimate",
    "State",
    "StateGrid",
]

#: Version of the JSON format. Version 1 (before ``stationary_series`` and ``diverged``) still
#: loads: its states' series all follow the overall ``stationary`` flag; versions 1 and 2 (before
#: ``optimizer``) load as plain SGD.
SCHEMA_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)

HYPERPARAMETERS = ("lr", "wd", "elr", "radius")

#: Measured fields of a state, with what each holds.
MEASURED: dict[str, str] = {
    "loss": "U = E[L(w̄)], mean training loss at stationarity",
    "sphere_entropy": "S(ρ_w̄), entropy of the direction on the unit sphere (nats)",
    "sq_norm": "E‖w‖²",
    "mean_radius": "E‖w‖",
    "sigma2": "σ² = Tr Σ_w̄ / (d − 1), gradient-noise variance per direction at unit radius",
    "lambda_eff": "measured effective weight decay on the sphere (Eq. 83)",
    "grad_sq": "E‖∇L(w̄)‖² at unit radius (Appendix G correction)",
    "norm_balance": "mean per-step residual (1 − η_k λ)²‖w_k‖² + η_k²‖g_k‖² − ‖w_k‖²",
}

#: Measured series whose stationarity is judged separately (``State.stationary_series``): the
#: radius ‖w‖, the training loss, the gradient noise and the direction w̄ (its entropy queue).
SERIES = ("radius", "loss", "noise", "directions")

#: Measured fields that are radii (> 0) and squared norms (>= 0; E‖w‖² > 0).
_POSITIVE = ("sq_norm", "mean_radius")
_NONNEGATIVE = ("grad_sq",)
#: Fields that must be booleans, and fields that must be strings.
_FLAGS = ("energy_is_loss", "stationary", "diverged")
_TEXT = ("substrate", "reason")


def _real(name: str, x: Any) -> float:
    """``x`` as a float; strings, booleans and other non-numbers are refused, not parsed."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"{name}={x!r} must be a real number, not {type(x).__name__}")
    return float(x)


def _flag(name: str, x: Any) -> bool:
    """``x`` if it is a boolean; ``"false"``, ``"no"``, 0 or 1 are refused (they are not flags)."""
    if not isinstance(x, (bool, np.bool_)):
        raise ParameterTypeError(
            f"{name}={x!r} must be a boolean (True or False; true or false in JSON), not "
            f"{type(x).__name__}"
        )
    return bool(x)

_REQUIRED_HP = {
    "fixed_sphere": ("elr", "radius"),
    "fixed_elr": ("elr", "wd"),
    "fixed_lr": ("lr", "wd"),
}


@dataclass(frozen=True)
class Estimate:
    """A measured mean with its standard error and the number of (effective) samples behind it."""

    value: float
    stderr: float = 0.0
    n: int = 1

    def __post_init__(self) -> None:
        value, stderr = _real("value", self.value), _real("stderr", self.stderr)
        n = _real("n", self.n)
        if not math.isfinite(value):
            raise InvalidParameterError(f"Estimate value={value!r} must be finite")
        if not (math.isfinite(stderr) and stderr >= 0):
            raise InvalidParameterError(f"Estimate stderr={stderr!r} must be finite and >= 0")
        if not (n >= 1 and n == int(n)):
            raise InvalidParameterError(f"Estimate n={self.n!r} must be an integer >= 1")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "stderr", stderr)
        object.__setattr__(self, "n", int(n))

    @classmethod
    def coerce(
        cls, name: str, x: Estimate | float | Sequence[float] | Mapping[str, Any]
    ) -> Estimate:
        """Build from an Estimate, a number (exact), ``(value, stderr[, n])`` or a mapping."""
        if isinstance(x, Estimate):
            return x
        if isinstance(x, (str, bytes)):
            raise ParameterTypeError(
                f"{name}={x!r} must be a number, (value, stderr[, n]) or an Estimate, not a string"
            )
        try:
            if isinstance(x, Mapping):
                return cls(**x)
            if isinstance(x, (int, float, np.floating, np.integer)):
                return cls(x)
            return cls(*x)  # type: ignore[arg-type]
        except ThermocheckError as err:
            raise type(err)(f"{name}: {err}") from None
        except TypeError:
            raise InvalidParameterError(
                f"{name}={x!r} must be a number, (value, stderr[, n]) or an Estimate"
            ) from None


@dataclass(frozen=True)
class State:
    """One stationary measurement.

    Hyperparameters are named as in :mod:`thermocheck.theory`: ``lr`` (η), ``wd`` (λ), ``elr``
    (η_eff), ``radius`` (sphere radius). Measured fields are listed in :data:`MEASURED`; any may be
    ``None`` when not measured, and a law that needs it says so. ``energy_is_loss`` is True when the
    loss is the thermodynamic energy (isotropic noise); for networks and users' models it is False
    and the laws that need U to be the energy are not applicable.

    Stationarity: ``stationary_series`` maps measured series (:data:`SERIES`) to whether each
    reached stationarity; a series that is absent was not judged separately and follows the
    overall ``stationary`` flag, which is True only when every judged series is stationary. A state
    that did not reach stationarity carries ``stationary=False`` and a ``reason``; each law leaves
    out the states that are not stationary in the series it needs (:meth:`is_stationary_in`). A run
    that left the finite range or became NaN has ``diverged=True`` and is never stationary.

    ``optimizer`` records the optimizer and its hyperparameters
    (:func:`thermocheck.optimizers.check_optimizer`; default plain SGD). With SGD momentum β the
    state equations use the equivalent rates ``η/(1 − β)`` and ``η_eff/(1 − β)``
    (:attr:`equivalent_lr`, :attr:`equivalent_elr`).
    """

    protocol: str
    d: int
    sigma2: Estimate
    lr: float | None = None
    wd: float | None = None
    elr: float | None = None
    radius: float | None = None
    loss: Estimate | None = None
    sphere_entropy: Estimate | None = None
    sq_norm: Estimate | None = None
    mean_radius: Estimate | None = None
    lambda_eff: Estimate | None = None
    grad_sq: Estimate | None = None
    norm_balance: Estimate | None = None
    substrate: str = "user"
    energy_is_loss: bool = False
    stationary: bool = True
    reason: str = ""
    diverged: bool = False
    stationary_series: Mapping[str, bool] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    optimizer: Mapping[str, Any] = field(default_factory=lambda: check_optimizer(None))

    def __post_init__(self) -> None:
        protocol = theory.check_protocol(self.protocol)
        object.__setattr__(self, "optimizer", check_optimizer(self.optimizer))
        object.__setattr__(self, "d", check_dimension(_real("d", self.d)))
        for name in _FLAGS:
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        for name in _TEXT:
            if not isinstance(getattr(self, name), str):
                raise ParameterTypeError(f"{name}={getattr(self, name)!r} must be a string")
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(check_positive(name, _real(name, value))))
        for name in _REQUIRED_HP[protocol]:
            if getattr(self, name) is None:
                raise InvalidParameterError(f"{name} is required for protocol={protocol!r}")
        for name in MEASURED:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Estimate.coerce(name, value))
        check_positive("sigma2", self.sigma2.value)
        for name in (*_POSITIVE, *_NONNEGATIVE):
            value = getattr(self, name)
            if value is not None and not (value.value > 0 or
                                          (name in _NONNEGATIVE and value.value == 0)):
                bound = ">= 0" if name in _NONNEGATIVE else "> 0"
                raise InvalidParameterError(
                    f"{name}={value.value!r} is invalid: {name} ({MEASURED[name]}) must be {bound}"
                )
        object.__setattr__(self, "stationary_series", self._checked_series())
        if not self.stationary and not self.reason:
            raise InvalidParameterError("a non-stationary state needs a reason")

    def _checked_series(self) -> dict[str, bool]:
        """``stationary_series`` as a dict of booleans keyed by :data:`SERIES`, consistent with
        ``stationary`` (True only when every judged series is) and ``diverged`` (never
        stationary)."""
        if not isinstance(self.stationary_series, Mapping):
            raise ParameterTypeError(
                f"stationary_series={self.stationary_series!r} must be a mapping from series "
                f"{SERIES} to booleans"
            )
        judged = {}
        for name, flag in self.stationary_series.items():
            if name not in SERIES:
                raise InvalidParameterError(
                    f"stationary_series has an unknown series {name!r}: choose from {SERIES}"
                )
            judged[name] = _flag(f"stationary_series[{name!r}]", flag)
        unstable = [name for name, flag in judged.items() if not flag]
        if self.stationary and unstable:
            raise InvalidParameterError(
                f"stationary=True contradicts stationary_series: {', '.join(unstable)} not "
                f"stationary; pass stationary=False with a reason"
            )
        if self.stationary and self.diverged:
            raise InvalidParameterError(
                "stationary=True contradicts diverged=True: a diverged state is never stationary; "
                "pass stationary=False with a reason"
            )
        return judged

    # -- stationarity per series ----------------------------------------------------------------
    def not_stationary_in(self, series: Iterable[str]) -> tuple[str, ...]:
        """The members of ``series`` (names from :data:`SERIES`) in which this state is not
        stationary: all of them when it diverged; a series not judged separately follows the
        overall ``stationary`` flag."""
        names = (series,) if isinstance(series, str) else tuple(series)
        for name in names:
            if name not in SERIES:
                raise InvalidParameterError(f"series={name!r} is unknown: choose from {SERIES}")
        return tuple(name for name in names
                     if self.diverged or not self.stationary_series.get(name, self.stationary))

    def is_stationary_in(self, series: Iterable[str]) -> bool:
        """Whether the state is stationary in every series named (from :data:`SERIES`)."""
        return not self.not_stationary_in(series)

    # -- thermodynamic coordinates --------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, float]:
        """The protocol's two grid coordinates, e.g. ``{"lr": 0.01, "wd": 0.001}``."""
        return {name: getattr(self, name) for name in theory.AXES[self.protocol]}

    @property
    def momentum_factor(self) -> float:
        """``1/(1 − β)`` for SGD with momentum β (1 for plain SGD): the leading-order factor of
        the step (:func:`thermocheck.optimizers.momentum_factor`). AdamW has none."""
        if self.optimizer["name"] != "sgd":
            raise InvalidParameterError(
                f"optimizer {self.optimizer['name']!r} has no equivalent SGD learning rate: the "
                "state equations of SGD do not apply to it")
        return momentum_factor(self.optimizer["momentum"])

    @property
    def equivalent_lr(self) -> float | None:
        """``η/(1 − β)``: the plain-SGD learning rate with the same leading-order stationary
        state (``η`` without momentum; None when the state has no ``lr``)."""
        return None if self.lr is None else self.lr * self.momentum_factor

    @property
    def equivalent_elr(self) -> float | None:
        """``η_eff/(1 − β)``, as :attr:`equivalent_lr` for the effective learning rate."""
        return None if self.elr is None else self.elr * self.momentum_factor

    @property
    def temperature(self) -> float:
        """T from the state equation (Eq. 7, 10, 19–20), with the measured σ² and the equivalent
        rates of momentum (``η/(1 − β)``, ``η_eff/(1 − β)``)."""
        return float(theory.temperature(self.protocol, self.d, self.sigma2.value,
                                        lr=self.equivalent_lr, wd=self.wd,
                                        elr=self.equivalent_elr))

    @property
    def pressure(self) -> float:
        """p = λ; on the sphere the measured λ_eff if present, else the predicted one (Eq. 83–84).
        """
        if self.protocol == "fixed_sphere" and self.lambda_eff is not None:
            return self.lambda_eff.value
        return float(theory.pressure(self.protocol, self.d, self.sigma2.value, wd=self.wd,
                                     elr=self.equivalent_elr, radius=self.radius))

    @property
    def volume(self) -> Estimate:
        """V = E‖w‖² / 2; on the sphere r² / 2 exactly."""
        if self.protocol == "fixed_sphere":
            assert self.radius is not None
            return Estimate(self.radius**2 / 2)
        sq = self.require("sq_norm")
        return Estimate(sq.value / 2, sq.stderr / 2, sq.n)

    @property
    def entropy(self) -> Estimate:
        """S = S(ρ_w̄) + (d − 1) log E‖w‖ (Eq. 28), error propagated to first order."""
        s = self.require("sphere_entropy")
        if self.protocol == "fixed_sphere":
            assert self.radius is not None
            r = Estimate(self.radius)
        else:
            r = self.require("mean_radius")
        value = s.value + (self.d - 1) * math.log(r.value)
        stderr = math.hypot(s.stderr, (self.d - 1) * r.stderr / r.value)
        return Estimate(value, stderr, min(s.n, r.n))

    def require(self, name: str) -> Estimate:
        """The measured field ``name``, or a clear error when the state does not carry it."""
        value = getattr(self, name)
        if value is None:
            raise InvalidParameterError(
                f"state at {self.hyperparameters} has no measured {name!r} ({MEASURED[name]})"
            )
        return value

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (Estimates as ``{"value", "stderr", "n"}``)."""
        out = asdict(self)
        out["extra"] = dict(self.extra)
        out["stationary_series"] = dict(self.stationary_series)
        out["optimizer"] = dict(self.optimizer)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> State:
        """Inverse of :meth:`to_dict`; measured fields may also be numbers or (value, stderr, n).
        Records of schema version 1 (without ``stationary_series`` and ``diverged``) load too."""
        if not isinstance(record, Mapping):
            raise ParameterTypeError(
                f"a state record must be a mapping, got {type(record).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(record) - known - {"schema_version"}
        if unknown:
            raise InvalidParameterError(
                f"unknown state fields {sorted(unknown)}; known: {sorted(known)}"
            )
        kwargs = {k: v for k, v in record.items() if k in known}
        for name in ("protocol", "d", "sigma2"):
            if name not in kwargs:
                raise InvalidParameterError(f"{name} is required in a state record")
        kwargs["sigma2"] = Estimate.coerce("sigma2", kwargs["sigma2"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> State:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


_REPORT_HINT = (
    "this is a thermocheck report (report.json): it holds law results, not states. The states "
    "a report was computed from are under its 'states' key, one grid per protocol: read them "
    "with thermocheck.report.load_report(path).grids[protocol] (a report written without grids "
    "has none), or save a grid with StateGrid.save(path) when you measure it"
)


class StateGrid(Sequence[State]):
    """States of one protocol and one ``d``, indexed by the protocol's two hyperparameters.

    Build from states, records (:meth:`from_records`), arrays (:meth:`from_arrays`) or JSON
    (:meth:`load`). ``grid.at(lr=..., wd=...)`` finds a point (relative tolerance 1e-9);
    ``grid.table("loss")`` returns a 2-d array over ``grid.axis_values()``, NaN where missing.
    """

    def __init__(self, states: Iterable[State]) -> None:
        self._states = tuple(states)
        if not self._states:
            raise GridError("a grid needs at least one state")
        first = self._states[0]
        for s in self._states:
            if not isinstance(s, State):
                raise GridError(f"grid entries must be State objects, got {type(s).__name__}")
            if (s.protocol, s.d) != (first.protocol, first.d):
                raise GridError(
                    f"a grid holds one protocol and one d: found protocol={s.protocol!r}, d={s.d} "
                    f"beside protocol={first.protocol!r}, d={first.d}"
                )
            if s.optimizer != first.optimizer:
                raise GridError(f"a grid holds one optimizer: found {dict(s.optimizer)} beside "
                                f"{dict(first.optimizer)}")
        keys = [self._key(s.hyperparameters) for s in self._states]
        if len(set(keys)) != len(keys):
            raise GridError("duplicate hyperparameters in the grid: each point must appear once")

    @staticmethod
    def _key(hp: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(float(f"{v:.9e}") for v in hp.values())

    # -- Sequence protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._states)

    def __getitem__(self, i: Any) -> Any:
        return self._states[i]

    def __iter__(self) -> Iterator[State]:
        return iter(self._states)

    def __repr__(self) -> str:
        return f"StateGrid(protocol={self.protocol!r}, d={self.d}, points={len(self)})"

    # -- description ----------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        return self._states[0].protocol

    @property
    def d(self) -> int:
        return self._states[0].d

    @property
    def substrate(self) -> str:
        return self._states[0].substrate

    @property
    def optimizer(self) -> Mapping[str, Any]:
        """The optimizer record every state of the grid shares."""
        return self._states[0].optimizer

    @property
    def axes(self) -> tuple[str, str]:
        """The two hyperparameter names, in (x, y) order."""
        return theory.AXES[self.protocol]

    def axis_values(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct values of each axis."""
        x, y = self.axes
        return (np.unique([getattr(s, x) for s in self]), np.unique([getattr(s, y) for s in self]))

    def at(self, **hp: float) -> State:
        """The state at the given hyperparameters (both axes): ``grid.at(lr=1e-2, wd=1e-3)``."""
        if set(hp) != set(self.axes):
            raise InvalidParameterError(f"give exactly the axes {self.axes}, got {sorted(hp)}")
        for s in self:
            if all(math.isclose(getattr(s, k), v, rel_tol=1e-9) for k, v in hp.items()):
                return s
        raise StateNotFoundError(f"no state at {hp} in {self!r}")

    def stationary(self, series: Iterable[str] | None = None) -> StateGrid | None:
        """The sub-grid of the states stationary overall, or in every one of ``series`` (names
        from :data:`SERIES`); None when there are none."""
        names = None if series is None else tuple(series)
        kept = [s for s in self if (s.stationary if names is None else s.is_stationary_in(names))]
        return StateGrid(kept) if kept else None

    def table(self, quantity: str) -> np.ndarray:
        """``quantity`` (an attribute name, or a callable-free property like ``temperature``) as a
        2-d array indexed by ``axis_values()``; Estimates give their value; NaN where missing."""
        xs, ys = self.axis_values()
        out = np.full((xs.size, ys.size), np.nan)
        x, y = self.axes
        for s in self:
            v = getattr(s, quantity)
            if v is None:
                continue
            i = int(np.searchsorted(xs, getattr(s, x)))
            j = int(np.searchsorted(ys, getattr(s, y)))
            out[i, j] = v.value if isinstance(v, Estimate) else float(v)
        return out

    # -- construction and I/O -------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> StateGrid:
        """From dicts as produced by :meth:`State.to_dict` (numbers allowed for Estimates); an
        error names the record (``states[i]``) and the field."""
        states = []
        for i, record in enumerate(records):
            try:
                states.append(State.from_dict(record))
            except ThermocheckError as err:
                raise type(err)(f"states[{i}]: {err}") from None
        return cls(states)

    @classmethod
    def from_arrays(
        cls,
        protocol: str,
        d: int,
        sigma2: Any,
        *,
        substrate: str = "user",
        energy_is_loss: bool = False,
        **columns: Any,
    ) -> StateGrid:
        """From equal-length 1-d arrays, one per hyperparameter and per measured field.

        A measured field ``q`` takes its standard errors from ``q_stderr`` and counts from ``q_n``
        when given, e.g. ``from_arrays("fixed_lr", d, sigma2=1.0, lr=lrs, wd=wds, loss=U,
        loss_stderr=dU, sphere_entropy=S, sq_norm=W2, mean_radius=r)``.
        """
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in columns.items()}
        arrays["sigma2"] = np.atleast_1d(np.asarray(sigma2, dtype=np.float64))
        allowed = set(HYPERPARAMETERS) | {
            f"{m}{suffix}" for m in MEASURED for suffix in ("", "_stderr", "_n")
        }
        unknown = set(arrays) - allowed
        if unknown:
            raise InvalidParameterError(
                f"unknown columns {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        n = max(a.size for a in arrays.values())
        for k, a in arrays.items():
            if a.ndim != 1 or a.size not in (1, n):
                raise InvalidParameterError(
                    f"{k} has shape {a.shape}: every column must be 1-d of length {n} (or a scalar)"
                )
        arrays = {k: np.broadcast_to(a, (n,)) for k, a in arrays.items()}
        states = []
        for i in range(n):
            rec: dict[str, Any] = {k: float(arrays[k][i]) for k in HYPERPARAMETERS if k in arrays}
            for m in MEASURED:
                if m in arrays:
                    rec[m] = Estimate(
                        arrays[m][i],
                        arrays[f"{m}_stderr"][i] if f"{m}_stderr" in arrays else 0.0,
                        int(arrays[f"{m}_n"][i]) if f"{m}_n" in arrays else 1,
                    )
            states.append(State(protocol=protocol, d=d, substrate=substrate,
                                energy_is_loss=energy_is_loss, **rec))
        return cls(states)

    def to_json(self) -> str:
        """JSON text with ``schema_version`` and one record per state."""
        return json.dumps({"schema_version": SCHEMA_VERSION, "kind": "thermocheck.StateGrid",
                           "states": [s.to_dict() for s in self]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> StateGrid:
        """Inverse of :meth:`to_json`; reads ``schema_version`` 1 and 2 and refuses others, and
        refuses a ``report.json`` (law results, not states) with a pointer to its states."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidParameterError(f"not a JSON state grid: {err}") from None
        if not isinstance(data, Mapping):
            raise InvalidParameterError("a state grid is a JSON object with 'schema_version' and "
                                        f"'states', got a {type(data).__name__}")
        if data.get("kind") == "thermocheck.Report" or "results" in data:
            raise InvalidParameterError(_REPORT_HINT)
        version = data.get("schema_version")
        if version not in _READABLE_VERSIONS:
            raise InvalidParameterError(
                f"schema_version={version!r} is not supported: this thermocheck reads "
                f"{', '.join(map(str, _READABLE_VERSIONS))}"
            )
        states = data.get("states")
        if not isinstance(states, list):
            raise InvalidParameterError(
                f"'states' must be a list of state records, got {states!r:.60}")
        return cls.from_records(states)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically to ``path``."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StateGrid:
        """Read a file written by :meth:`save`; every error names the file (and the record and
        field at fault)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidParameterError(f"cannot read the state grid file {path}: {err}") from None
        try:
            return cls.from_json(text)
        except ThermocheckError as err:
            raise type(err)(f"{path}: {err}") from None

    @classmethod
    def combine(cls, *sources: StateGrid | State | Iterable[State]) -> StateGrid:
        """One grid from the states of several runs (e.g. a user's sweep, one state per run)."""
        out: list[State] = []
        for src in sources:
            out.extend([src] if isinstance(src, State) else src)
        return cls(out)
