"""Measured stationary states and grids of them: what substrates produce and laws consume.

A :class:`State` is one stationary measurement: the protocol, the dimension ``d``, the
hyperparameters, and the measured quantities, each an :class:`Estimate` (value, standard error,
sample count). A :class:`StateGrid` holds the states of one protocol and one ``d`` on a grid of
two hyperparameters (``theory.AXES``). Users fill them from their own logs; both round-trip through
JSON with a ``schema_version``.
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
from thermocheck.errors import GridError, InvalidParameterError, check_dimension, check_positive

__all__ = ["HYPERPARAMETERS", "MEASURED", "SCHEMA_VERSION", "Estimate", "State", "StateGrid"]

SCHEMA_VERSION = 1

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
        if not math.isfinite(self.value):
            raise InvalidParameterError(f"Estimate value={self.value!r} must be finite")
        if not (math.isfinite(self.stderr) and self.stderr >= 0):
            raise InvalidParameterError(f"Estimate stderr={self.stderr!r} must be finite and >= 0")
        if self.n < 1:
            raise InvalidParameterError(f"Estimate n={self.n!r} must be >= 1")
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "stderr", float(self.stderr))
        object.__setattr__(self, "n", int(self.n))

    @classmethod
    def coerce(
        cls, name: str, x: Estimate | float | Sequence[float] | Mapping[str, Any]
    ) -> Estimate:
        """Build from an Estimate, a number (exact), ``(value, stderr[, n])`` or a mapping."""
        if isinstance(x, Estimate):
            return x
        try:
            if isinstance(x, Mapping):
                return cls(**x)
            if isinstance(x, (int, float, np.floating, np.integer)):
                return cls(float(x))
            return cls(*x)  # type: ignore[arg-type]
        except InvalidParameterError as err:
            raise InvalidParameterError(f"{name}: {err}") from None
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
    and the laws that need U to be the energy are not applicable (READINGS.md). A state that did
    not reach
    stationarity carries ``stationary=False`` and a ``reason``; laws leave it out.
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
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        protocol = theory.check_protocol(self.protocol)
        object.__setattr__(self, "d", check_dimension(self.d))
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(check_positive(name, value)))
        for name in _REQUIRED_HP[protocol]:
            if getattr(self, name) is None:
                raise InvalidParameterError(f"{name} is required for protocol={protocol!r}")
        for name in MEASURED:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Estimate.coerce(name, value))
        check_positive("sigma2", self.sigma2.value)
        if not self.stationary and not self.reason:
            raise InvalidParameterError("a non-stationary state needs a reason")

    # -- thermodynamic coordinates --------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, float]:
        """The protocol's two grid coordinates, e.g. ``{"lr": 0.01, "wd": 0.001}``."""
        return {name: getattr(self, name) for name in theory.AXES[self.protocol]}

    @property
    def temperature(self) -> float:
        """T from the state equation (THEORY.md §3), with the measured σ²."""
        return float(theory.temperature(self.protocol, self.d, self.sigma2.value,
                                        lr=self.lr, wd=self.wd, elr=self.elr))

    @property
    def pressure(self) -> float:
        """p = λ; on the sphere the measured λ_eff if present, else the predicted one (Eq. 83–84).
        """
        if self.protocol == "fixed_sphere" and self.lambda_eff is not None:
            return self.lambda_eff.value
        return float(theory.pressure(self.protocol, self.d, self.sigma2.value, wd=self.wd,
                                     elr=self.elr, radius=self.radius))

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
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> State:
        """Inverse of :meth:`to_dict`; measured fields may also be numbers or (value, stderr, n)."""
        known = {f.name for f in fields(cls)}
        unknown = set(record) - known - {"schema_version"}
        if unknown:
            raise InvalidParameterError(
                f"unknown state fields {sorted(unknown)}; known: {sorted(known)}"
            )
        kwargs = {k: v for k, v in record.items() if k in known}
        if "sigma2" not in kwargs:
            raise InvalidParameterError("sigma2 is required in a state record")
        kwargs["sigma2"] = Estimate.coerce("sigma2", kwargs["sigma2"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> State:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


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
        raise KeyError(f"no state at {hp} in {self!r}")

    def stationary(self) -> StateGrid | None:
        """The sub-grid of stationary states (None when there are none)."""
        kept = [s for s in self if s.stationary]
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
        """From dicts as produced by :meth:`State.to_dict` (numbers allowed for Estimates)."""
        return cls(State.from_dict(r) for r in records)

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
        """Inverse of :meth:`to_json`; refuses an unknown ``schema_version``."""
        data = json.loads(text)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InvalidParameterError(
                f"schema_version={version!r} is not supported: this thermocheck reads "
                f"{SCHEMA_VERSION}"
            )
        return cls.from_records(data["states"])

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically to ``path``."""
        from thermocheck.report import atomic_write_text

        return atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StateGrid:
        return cls.from_json(Path(path).read_text())

    @classmethod
    def combine(cls, *sources: StateGrid | State | Iterable[State]) -> StateGrid:
        """One grid from the states of several runs (e.g. a user's sweep, one state per run)."""
        out: list[State] = []
        for src in sources:
            out.extend([src] if isinstance(src, State) else src)
        return cls(out)
