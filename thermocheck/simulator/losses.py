"""Scale-invariant losses ``L(w) = f(w/‖w‖)`` for the isotropic-noise simulator.

A loss is given on the direction ``w̄`` (a point of the unit sphere S^{d−1}); the simulator needs
``f(w̄)`` and the ambient gradient ``∇f(w̄)``, which it projects on the tangent space:
``∇L(w) = P_w̄ ∇f(w̄) / ‖w‖`` (scale invariance, properties P1–P2 of docs/theory.md §1).

With isotropic noise the stationary law of the direction is the Gibbs law
``ρ(w̄) ∝ exp(−f(w̄)/T)`` for any ``f`` (Eq. 7, 19). The built-in losses run inside the numba kernel:

* :class:`LinearLoss` ``f = 1 + μᵀw̄`` (‖μ‖ = 1) gives a von Mises–Fisher law with mean direction
  ``−μ`` and concentration ``κ = 1/T`` (Appendix E);
* :class:`QuadraticLoss` ``f = c + bᵀw̄ + w̄ᵀAw̄`` gives a (Fisher–)Bingham law.

Any other ``f`` is a :class:`CallableLoss`: a Python function evaluated once per iteration for the
whole grid (slower: about a microsecond per point and iteration plus the function's own cost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermocheck.errors import InvalidParameterError
from thermocheck.simulator.kernel import LINEAR, QUADRATIC, KernelLoss

__all__ = ["CallableLoss", "LinearLoss", "Loss", "QuadraticLoss", "as_loss"]

LossFunction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Loss:
    """Base of the simulator's losses: ``name`` goes to ``State.extra["loss"]``."""

    name: str = "custom"

    def kernel(self, d: int) -> KernelLoss | None:
        """The kernel's form for dimension ``d``; None when the loss is called from Python."""
        return None

    def __call__(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(f(w̄)[M], ∇f(w̄)[M, d])`` at unit directions ``wbar[M, d]`` (ambient gradient)."""
        raise NotImplementedError

    def evaluate(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`__call__` with its output checked and copied as the kernel needs it: float64,
        C-ordered, of shapes ``[M]`` and ``[M, d]`` (the kernel does not check bounds)."""
        out = self(wbar)
        try:
            values, grads = out
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"a loss must return (loss[M], grad[M, d]); got {type(out).__name__}"
            ) from None
        values = np.array(values, dtype=np.float64, order="C").reshape(-1)
        grads = np.array(grads, dtype=np.float64, order="C")
        if values.shape != wbar.shape[:1] or grads.shape != wbar.shape:
            raise InvalidParameterError(
                f"a loss must return loss of shape {wbar.shape[:1]} and grad of shape "
                f"{wbar.shape}; got {values.shape} and {grads.shape}"
            )
        return values, grads

    def describe(self, d: int) -> dict[str, Any]:
        """JSON-ready description for ``State.extra``."""
        return {"loss": self.name}


def _vector(name: str, value: Any, d: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (d,) or not np.all(np.isfinite(arr)):
        raise InvalidParameterError(
            f"{name} must be a finite vector of length d={d}, got shape {arr.shape}"
        )
    return arr


@dataclass(frozen=True)
class LinearLoss(Loss):
    """``f(w̄) = 1 + μᵀw̄`` with a unit vector μ (Eq. 24); ``mu=None`` is ``e_1`` in any d.

    Its stationary law is von Mises–Fisher with mean ``−μ`` and ``κ = 1/T``, the closed forms of
    Appendix E (``U = 1 − A_d(κ)``). μ must have unit norm, as those forms assume: a loss
    ``1 + a μᵀw̄`` is the same system at temperature ``T/a``, so scale σ² instead.
    """

    mu: Any = None
    name = "linear"

    def direction(self, d: int) -> np.ndarray:
        """μ as a unit vector of length ``d`` (validated)."""
        if self.mu is None:
            mu = np.zeros(d)
            mu[0] = 1.0
            return mu
        mu = _vector("mu", self.mu, d)
        if abs(np.linalg.norm(mu) - 1.0) > 1e-12:
            raise InvalidParameterError(
                f"mu has norm {np.linalg.norm(mu):.6g}: mu must be a unit vector (a loss 1 + a·μᵀw̄ "
                "is the unit-μ system at temperature T/a: scale sigma instead)"
            )
        return mu

    def kernel(self, d: int) -> KernelLoss:
        return KernelLoss(1.0, self.direction(d), np.zeros((d, d)), LINEAR)

    def __call__(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = self.direction(wbar.shape[1])
        return 1.0 + wbar @ mu, np.broadcast_to(mu, wbar.shape).copy()

    def describe(self, d: int) -> dict[str, Any]:
        return {"loss": self.name, "mu": self.direction(d).tolist()}


@dataclass(frozen=True)
class QuadraticLoss(Loss):
    """``f(w̄) = c + bᵀw̄ + w̄ᵀAw̄`` with ``A`` symmetrised as ``(A + Aᵀ)/2`` and ``b = 0`` by default:
    a Bingham stationary law (Fisher–Bingham with ``b``)."""

    A: Any
    b: Any = None
    c: float = 0.0
    name = "quadratic"

    def matrix(self, d: int) -> np.ndarray:
        """The symmetric ``d × d`` matrix (validated)."""
        a = np.asarray(self.A, dtype=np.float64)
        if a.shape != (d, d) or not np.all(np.isfinite(a)):
            raise InvalidParameterError(f"A must be a finite {d}×{d} matrix, got shape {a.shape}")
        return (a + a.T) / 2

    def linear(self, d: int) -> np.ndarray:
        """The linear term ``b`` (zeros when not given)."""
        return np.zeros(d) if self.b is None else _vector("b", self.b, d)

    def kernel(self, d: int) -> KernelLoss:
        return KernelLoss(float(self.c), self.linear(d), self.matrix(d), QUADRATIC)

    def __call__(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = wbar.shape[1]
        aw = wbar @ self.matrix(d)
        b = self.linear(d)
        return self.c + wbar @ b + np.einsum("md,md->m", wbar, aw), b + 2.0 * aw

    def describe(self, d: int) -> dict[str, Any]:
        return {"loss": self.name, "A": self.matrix(d).tolist(), "b": self.linear(d).tolist(),
                "loss_offset": float(self.c)}


@dataclass(frozen=True)
class CallableLoss(Loss):
    """A user's ``f(wbar[M, d]) -> (loss[M], grad[M, d])``; the gradient may be the ambient one or
    the tangent one (the simulator removes any radial component, which a scale-invariant loss
    cannot have)."""

    function: LossFunction
    name = "custom"

    def __call__(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.function(wbar)


def as_loss(loss: Loss | LossFunction | None) -> Loss:
    """``None`` → ``LinearLoss()``; a :class:`Loss` as is; other callables → :class:`CallableLoss`.
    """
    if loss is None:
        return LinearLoss()
    if isinstance(loss, Loss):
        return loss
    if callable(loss):
        return CallableLoss(loss)
    raise InvalidParameterError(
        f"loss={loss!r} is invalid: give LinearLoss(...), QuadraticLoss(...) or a callable "
        "f(wbar[M, d]) -> (loss[M], grad[M, d])"
    )
