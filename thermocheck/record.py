"""The measurement layer: the :class:`Recorder` of training runs. The gradient-noise measurement
(:func:`noise`, :func:`noise_from_gradients`) lives in :mod:`thermocheck.noise` and is re-exported
here.

A user's own loop records one model (``M = 1``)::

    recorder = Recorder(model, "fixed_lr", lr=0.1, wd=5e-4, data=(X, Y), batch_size=32,
                        noise_every=10)             # refuses a model that is not scale-invariant
    for x, y in batches:
        ...; loss.backward(); optimizer.step()
        recorder.step(loss)                         # on device: no host synchronisation
    state = recorder.state()                        # a State with batch-means standard errors

The network trainer measures ``M`` stacked models through the same class (``model=None``,
:meth:`Recorder.begin` / :meth:`Recorder.end` with weights ``W[M, P]``): one mechanism.

Per step the recorder keeps, on the weights' device, the Gram matrix of ``(w_k, g_k)``
(``‖w_k‖²``, ``⟨w_k, g_k⟩``, ``‖g_k‖²``) and the loss; ``‖w_{k+1}‖²`` is the next step's ``‖w‖²``.
Every ``every`` steps it turns them into block means of the derived quantities
(:data:`QUANTITIES`): the exact one-step norm balance of Eq. 111, the effective weight decay of
Eq. 83, the unit-radius gradient norm ``‖w_k‖²‖g_k‖² = ‖∇L_B(w̄_k)‖²`` (P1) and the residual of the
claimed update (zero to round-off when the optimizer does what the protocol says; momentum or a
different weight decay shows there). The host reads the block means only at log points
(:meth:`Recorder.sync`, :meth:`Recorder.state`). Directions are queued every ``queue_every`` steps
for the entropy (Eq. 25–28).

SGD with momentum
-----------------
With the momentum β of ``torch.optim.SGD`` (:meth:`Recorder.attach` reads it, or the
constructor's ``optimizer`` record claims it) the update is ``w_{k+1} = w_k − η_k u_k`` with
``u = a g + b w + c v``, ``v`` the velocity before the step: heavy ball
``(a, b, c) = (1, λ, β)``, Nesterov ``(1 + β, (1 + β)λ, β²)`` (docs/optimizers.md). The
recorder keeps the *claimed* velocity itself, ``v ← βv + g + λw`` from the recorded ``g_k``,
``w_k`` and the claimed β and λ, and adds it as a third row of the per-step Gram matrix
(``⟨w, v⟩``, ``⟨v, g⟩``, ``‖v‖²``). The norm balance is then the exact one-step change of the
norm for the claimed update,
``‖w_{k+1}‖² − ‖w_k‖² = η_k² ‖u_k‖² − 2η_k ⟨w_k, u_k⟩`` (from Eq. 111), with ``⟨w_k, g_k⟩ = 0``
(P2), whose stationary mean is zero without approximation; λ_eff is Eq. 83 for the update without
this step's decay, ``q = a g + c v``, per effective step ``η_k/(1 − β)``. At β = 0 both are the
plain-SGD terms above. A loop whose real update differs from the claim (another β, a decay added
to the gradient as well, a velocity not decayed) leaves a non-zero mean. The series
``unit_vel_grad``, ``‖w_k‖²⟨v_k, g_k⟩``, is the velocity's memory of past gradients; its window
mean is ``State.extra["velocity_grad"]``, the term ``2c E[‖w‖²⟨v, g⟩]`` of V1's momentum trace
(docs/optimizers.md).

Why the noise scale comes from every training step
--------------------------------------------------
The state equations need stationary means: ``r*² = η_eff Tr / (2λ)`` (Eq. 12, 120) and
``r*⁴ = η Tr / (2λ)`` (Eq. 19, 119) with ``Tr = E_ρ[Tr Σ_w̄ + ‖∇L(w̄)‖²]`` (Appendix G), the mean over
the stationary law ρ of the direction. Each training step samples it without bias: the minibatch
of step k is drawn independently of ``w_k``, so ``E[‖w_k‖²‖g_k‖² | w_k] = Tr Σ_w̄_k + ‖∇L(w̄_k)‖²``.
A few snapshots (:func:`noise` at log points, the paper's method) sample only a handful of
``w̄``, and for networks ``E_B‖∇L_B(w̄)‖²`` is strongly right-skewed over ρ. Measured on the
``cpu-tiny`` grids (ConvNet width 2 on digits, fixed LR η ∈ {0.1, 0.2, 0.4} and fixed ELR
η_eff ∈ {0.007, 0.013, 0.025}, λ ∈ {0.025, 0.05, 0.1}; 1500-step tails): the per-step series has
mean/median 1.2–2.3 and p99/median 4–18, with an integrated autocorrelation time of 2–7 steps.
Fed with its mean, the state equation predicts the measured ``E‖w‖²`` within 2 % at all 9 fixed LR
points and within 10 % at all 9 fixed ELR points. Six snapshots were off by up to a factor 2, which
was the cause of the V1 failures: at η_eff = 0.013, λ = 0.1, E‖w‖² was 11.7, the per-step prediction
11.8 and the snapshot prediction 6.2. BatchNorm's chunking of the full-batch gradient is not the
cause (it moves Tr Σ by under 2 %), nor are radius fluctuations (E‖w‖⁴/E‖w‖²² ≤ 1.13).

The split between ``σ² = Tr Σ_w̄ /(d − 1)`` and ``E‖∇L(w̄)‖²`` needs gradients at one ``w`` for two
independent minibatches. Noise measurements are therefore small and frequent: a few minibatch
gradients (the stacked trainer reuses the training step's own gradient as one of them) every
few steps, which give ``E‖∇L(w̄)‖²`` without bias (:func:`noise_from_gradients`). Then
``σ² = (E‖w_k‖²‖g_k‖² − E‖∇L(w̄)‖²)/(d − 1)``. Their own σ² (the paper's, centred differently) is in
``State.extra["sigma2_measured"]`` for comparison. The corrected trace ``σ²(d − 1) + E‖∇L(w̄)‖²``
that V1 uses is then the per-step mean. The laws add the two terms' standard errors in
quadrature as if they were independent, which overstates its error a little: conservative.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_choice, check_positive
from thermocheck.invariance import check_scale_invariance
from thermocheck.measurement import judge, window_estimate
from thermocheck.noise import (
    LossFn,
    NoiseEstimate,
    noise,
    noise_from_gradients,
    trainable_parameters,
    unit_radius,
)
from thermocheck.optimizers import check_optimizer
from thermocheck.states import Estimate, State, StateGrid
from thermocheck.stats import MIN_BATCHES

__all__ = [
    "INTERPOLATION_REASON",
    "QUANTITIES",
    "GridSpec",
    "NoiseEstimate",
    "Recorder",
    "noise",
    "noise_from_gradients",
    "read_optimizer",
]

INTERPOLATION_REASON = "no stationary distribution: the model interpolates (Tr Σ → 0)"

#: Block means the recorder logs, in the order of its device history's first axis.
QUANTITIES = (
    "sq_norm",  # ‖w_k‖²
    "mean_radius",  # ‖w_k‖
    "step_grad_sq",  # ‖g_k‖²
    "unit_grad_sq",  # ‖w_k‖²‖g_k‖² = ‖∇L_B(w̄_k)‖² (P1)
    "norm_balance",  # (1 − η_k λ)²‖w_k‖² + η_k²‖g_k‖² − ‖w_k‖² (Eq. 111)
    "balance_lhs",  # (1 − η_k λ)²‖w_k‖² + η_k²‖g_k‖²
    "lambda_eff",  # (‖w_k − η_k g_k‖ − ‖w_k‖)/(η_k ‖w_k‖) (Eq. 83)
    "radial_cos",  # ⟨w_k, g_k⟩/(‖w_k‖‖g_k‖): 0 for a scale-invariant loss (P2)
    "unit_vel_grad",  # ‖w_k‖²⟨v_k, g_k⟩: the velocity's memory of past gradients (0 without)
    "loss",  # training loss (NaN where not given)
    "update_residual",  # (‖w_{k+1}‖² − claimed)/‖w_k‖² (NaN where w_{k+1} not given)
)
#: Rows of the per-step Gram matrix: w_k, g_k and, with SGD momentum, the claimed velocity v_k.
#: The step buffer's last axis holds that matrix row by row, then the loss. ‖w_{k+1}‖² is the
#: next step's ‖w‖².
_ROWS = ("w", "g", "v")
#: Relative difference below which two values of one hyperparameter are the same (float32's
#: resolution: a value that went through a float32 tensor still matches its float64 original).
_SAME = float(np.finfo(np.float32).eps)
#: Keys of a torch optimizer's param groups that change nothing in the update (implementation
#: choices); :func:`read_optimizer` compares every other key across groups.
_IMPLEMENTATION_KEYS = frozenset({"params", "foreach", "fused", "differentiable", "capturable",
                                  "param_names"})
#: The logged quantity whose stationarity stands for each judged series
#: (:data:`thermocheck.states.SERIES`). The direction w̄ is not logged as a series; the loss (or,
#: without it, the unit-radius gradient norm) is a function of w̄ alone (P1), so its verdict is the
#: directions' (:func:`thermocheck.measurement.judge`).
_JUDGED = {"radius": "mean_radius", "loss": "loss", "noise": "unit_grad_sq"}
#: Most contiguous sub-queues whose entropies give the entropy's standard error.
ENTROPY_BATCHES = 5

# -- protocols as update coefficients --------------------------------------------------------------
@dataclass(frozen=True)
class GridSpec:
    """Per-model update coefficients: step ``η_k = a + b‖w_k‖²``, weight decay ``wd``, projection.

    fixed LR (Eq. 15): ``a = η, b = 0``; fixed ELR (Eq. 8): ``a = 0, b = η_eff``; fixed sphere:
    ``a = η_eff r², b = 0, wd = 0`` and a projection on the sphere of radius ``r``. Tensors have
    shape ``[M]``; one grid may mix protocols.
    """

    a: torch.Tensor
    b: torch.Tensor
    wd: torch.Tensor
    radius: torch.Tensor
    project: torch.Tensor

    @classmethod
    def build(
        cls,
        protocols: Sequence[str],
        *,
        lr: Sequence[float | None],
        wd: Sequence[float | None],
        elr: Sequence[float | None],
        radius: Sequence[float | None],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> GridSpec:
        """Coefficients for models ``i`` with ``protocols[i]`` and hyperparameters ``lr[i]`` …"""
        a: list[float] = []
        b: list[float] = []
        w: list[float] = []
        r: list[float] = []
        proj: list[bool] = []
        for i, p in enumerate(protocols):
            theory.check_protocol(p)
            given = {"lr": lr[i], "wd": wd[i], "elr": elr[i], "radius": radius[i]}
            hp = {name: float(check_positive(f"{name} (model {i}, {p})",
                                             np.nan if given[name] is None else given[name]))
                  for name in theory.AXES[p]}
            sphere = p == "fixed_sphere"
            step = hp["elr"] * hp["radius"] ** 2 if sphere else 0.0
            a.append(hp["lr"] if p == "fixed_lr" else step)
            b.append(hp["elr"] if p == "fixed_elr" else 0.0)
            w.append(0.0 if sphere else hp["wd"])
            r.append(hp["radius"] if sphere else 1.0)
            proj.append(sphere)

        def t(v: list[float]) -> torch.Tensor:
            return torch.tensor(v, dtype=dtype, device=device)

        return cls(t(a), t(b), t(w), t(r), torch.tensor(proj, device=device))

    def step_size(self, sq: torch.Tensor) -> torch.Tensor:
        """``η_k = a + b‖w_k‖²`` per model."""
        return self.a + self.b * sq


# -- the optimizer of a user's loop ----------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A param-group value as plain Python: tensors (a tensor ``lr``, tensor betas) as floats."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


def _shared_group(optimizer: torch.optim.Optimizer,
                  params: Sequence[nn.Parameter]) -> dict[str, Any]:
    """The hyperparameters of the param groups that hold ``params``, which must all agree."""
    ids = {id(p) for p in params}
    groups = [g for g in optimizer.param_groups if ids & {id(p) for p in g["params"]}]
    covered = {id(p) for g in groups for p in g["params"]}
    if not ids <= covered:
        raise InvalidParameterError(
            "the optimizer does not update every trainable parameter of the recorded model")
    first = {k: _plain(v) for k, v in groups[0].items() if k not in _IMPLEMENTATION_KEYS}
    for i, group in enumerate(groups[1:], 1):
        for key, value in first.items():
            other = _plain(group.get(key))
            if other != value:
                raise InvalidParameterError(
                    f"param groups 0 and {i} differ in {key}: {value!r} vs {other!r}; the laws "
                    f"model one optimizer with one set of hyperparameters for all recorded "
                    f"weights (give them the same {key})")
    return first


def _refuse(group: Mapping[str, Any], key: str, modelled: Any, what: str) -> None:
    """Refuse a param-group value other than the ``modelled`` one, naming the key."""
    if group.get(key, modelled) != modelled:
        raise InvalidParameterError(f"{key}={group[key]!r} is not modelled: {what} (valid: "
                                    f"{key}={modelled!r})")


def _sgd_record(group: Mapping[str, Any]) -> dict[str, Any]:
    """``torch.optim.SGD`` as an optimizer record: dampening 0, coupled weight decay."""
    _refuse(group, "dampening", 0, "the laws model torch.optim.SGD's v ← βv + g + λw, which "
            "dampening scales by (1 − dampening)")
    _refuse(group, "maximize", False, "maximize=True ascends the loss")
    return check_optimizer({"name": "sgd", "momentum": group["momentum"],
                            "nesterov": group["nesterov"]})


def _adamw_record(kind: type, group: Mapping[str, Any]) -> dict[str, Any]:
    """``torch.optim.AdamW`` (or Adam with decoupled weight decay) as an optimizer record."""
    if not group.get("decoupled_weight_decay", kind is torch.optim.AdamW):
        raise InvalidParameterError(
            f"torch.optim.Adam with weight_decay={group['weight_decay']!r} adds λw to the gradient "
            f"inside the moments (coupled L2), which is not modelled: use torch.optim.AdamW "
            f"(decoupled weight decay; or Adam with decoupled_weight_decay=True)")
    _refuse(group, "amsgrad", False, "AMSGrad's running maximum of v̂ is not in the equilibrium "
            "of Kosson et al. (2024)")
    _refuse(group, "maximize", False, "maximize=True ascends the loss")
    return check_optimizer({"name": "adamw", "betas": group["betas"], "eps": group["eps"]})


def read_optimizer(optimizer: torch.optim.Optimizer,
                   params: Sequence[nn.Parameter]) -> tuple[dict[str, Any], dict[str, float]]:
    """The optimizer record (:func:`thermocheck.optimizers.check_optimizer`) of a torch optimizer
    over ``params``, and its learning rate and weight decay ``{"lr": η, "wd": λ}``.

    Modelled: ``torch.optim.SGD`` with dampening 0 (heavy ball or Nesterov, coupled decay:
    ``v ← βv + g + λw``, ``w ← w − ηv``), and ``torch.optim.AdamW`` (``w ← w − ηλw``, then the
    Adam step; Kosson et al., 2024). Refused with the parameter and its value named: any other
    class (Adam's coupled L2 included), dampening ≠ 0, ``maximize``, AMSGrad, and param groups
    over ``params`` whose hyperparameters differ.
    """
    group = _shared_group(optimizer, params)
    kind = type(optimizer)
    if kind is torch.optim.SGD:
        record = _sgd_record(group)
    elif kind in (torch.optim.AdamW, torch.optim.Adam):
        record = _adamw_record(kind, group)
    else:
        raise InvalidParameterError(
            f"optimizer {kind.__module__}.{kind.__qualname__} is not modelled: attach() reads "
            f"torch.optim.SGD (momentum, nesterov; dampening 0) and torch.optim.AdamW")
    return record, {"lr": float(group["lr"]), "wd": float(group["weight_decay"])}


def _same(a: float, b: float) -> bool:
    """Two values of one hyperparameter agree to float32 resolution (:data:`_SAME`)."""
    return math.isclose(a, b, rel_tol=_SAME, abs_tol=0.0)


def _agree(hp: dict[str, list[Any]], name: str, key: str, value: float) -> None:
    """Fill the recorder's ``hp[name]`` from the optimizer's ``key``, or refuse a different one."""
    given = hp[name][0]
    if given is None:
        check_positive(f"the optimizer's {key}", value)
        hp[name] = [value]
    elif not _same(float(given), value):
        raise InvalidParameterError(
            f"{name}={given!r} was given to the Recorder but the optimizer has {key}={value!r}: "
            f"give one of them, or the same value")


def _check_sphere_step(found: Mapping[str, float], elr: float | None,
                       radius: float | None) -> None:
    """The fixed sphere has no weight decay and steps with ``η = η_eff r²``."""
    if found["wd"] != 0:
        raise InvalidParameterError(
            f"weight_decay={found['wd']!r} is not modelled on the fixed sphere, whose projection "
            f"fixes the radius (valid: weight_decay=0)")
    if elr is not None and radius is not None and not _same(found["lr"], elr * radius**2):
        raise InvalidParameterError(
            f"lr={found['lr']!r} of the optimizer is not η_eff r² = {elr * radius**2!r} "
            f"(elr={elr!r}, radius={radius!r}), the fixed sphere's step")


def _check_unchanged(watched: Sequence[tuple[dict[str, Any], dict[str, Any]]], step: int) -> None:
    """Refuse a param-group hyperparameter changed since :meth:`Recorder.attach` (a scheduler).
    Compares Python values only: a tensor is never read, which would synchronise with the host."""
    for group, seen in watched:
        for key, old in seen.items():
            new = group[key]
            if new is not old and not isinstance(new, torch.Tensor) and new != old:
                raise InvalidParameterError(
                    f"{key} changed from {old!r} to {new!r} at step {step}: the protocols keep "
                    f"the optimizer's hyperparameters constant (attach a new Recorder for a new "
                    f"value)")


# -- the recorder ----------------------------------------------------------------------------------
def _spread(values: np.ndarray) -> Estimate:
    """Mean of independent-ish measurements with ``sd/√k``; a single one counts as ±100 %."""
    k = values.size
    se = float(values.std(ddof=1) / math.sqrt(k)) if k > 1 else abs(float(values[0]))
    return Estimate(float(values.mean()), se, k)


def _entropy(snapshots: torch.Tensor) -> Estimate:
    """Direction entropy of the queue (Eq. 25–28) with its standard error.

    The value is :func:`thermocheck.entropy.sphere_entropy` of all ``N`` snapshots (the k-NN bias
    falls with N, so no sample is wasted). The error is ``sd(S_1 … S_b)/√b`` over ``b`` contiguous
    sub-queues (``b = min(5, N // 5)``): the entropy logs of shorter queues, as batch means are for
    a series. It assumes the estimator's variance falls as ``1/N``; measured over 150 seeds of
    i.i.d. von Mises–Fisher samples (b = 5), the root-mean-square of this error over the true
    standard deviation is 0.99 (d = 10, κ = 50, N = 400), 0.96 (d = 50, κ = 500, N = 200) and 0.99
    (d = 300, κ = 3000, N = 150). Contiguous sub-queues also carry the snapshots' autocorrelation.
    """
    from thermocheck.entropy import sphere_entropy

    n = snapshots.shape[0]
    b = min(ENTROPY_BATCHES, n // 5)
    subs = np.array([sphere_entropy(part) for part in snapshots.tensor_split(b)])
    return Estimate(sphere_entropy(snapshots), float(subs.std(ddof=1) / math.sqrt(b)), n)


class Recorder:
    """Records training runs on device and returns their stationary :class:`State` s.

    Give it the user's ``model`` (``M = 1``), or ``model=None`` and ``d`` for ``M`` stacked models
    whose weights ``W[M, P]`` and gradients are passed to :meth:`begin` / :meth:`end` (the network
    trainer). Hyperparameters are named as in :class:`State` and may be sequences of length ``M``.

    Four ways to feed it, each once per optimisation step ``k``:

    * :meth:`step` right after ``optimizer.step()`` (and before ``zero_grad``): reads ``g_k`` from
      ``.grad`` and ``w_k`` from its own copy of the weights (taken at construction, then after
      every step). Under fixed sphere, project first, then call it. Construct the recorder before
      the first step.
    * :meth:`attach` reads the optimizer's hyperparameters (:func:`read_optimizer`: SGD with
      momentum or Nesterov, AdamW) and registers its step pre-hook (reads ``w_k``, ``g_k``) and
      post-hook (closes the step); give the loss with :meth:`log_loss`. It needs
      ``optimizer.step()`` without a closure, since a closure computes the gradient after the
      pre-hook.
    * :meth:`begin` after the backward pass and :meth:`end` after the update (integrations, e.g.
      :class:`thermocheck.extra.lightning.RecorderCallback`).
    * :meth:`begin` ``(W, G)`` / :meth:`end` ``(loss)`` with arrays ``[M, P]`` (``model=None``).

    ``‖w_{k+1}‖²`` is always the next step's ``‖w‖²``: weights changed between steps (a projection)
    count as part of the update.

    Parameters
    ----------
    model : nn.Module or None
        The model; its parameters with ``requires_grad=True`` are ``w`` (d of them).
    protocol : str or sequence of str
        One of ``theory.PROTOCOLS`` for all models, or one per model.
    lr, wd, elr, radius : float or sequence of float, optional
        Hyperparameters named as in :class:`State` (η, λ, η_eff, sphere radius). With a model,
        ``lr`` (fixed LR) and ``wd`` may be left to :meth:`attach`, which reads them from the
        optimizer; given to both, they must agree.
    optimizer : mapping, optional
        The optimizer the loop claims to run, as a record of
        :func:`thermocheck.optimizers.check_optimizer` (default plain SGD), for loops fed through
        :meth:`step` or :meth:`begin` / :meth:`end`; :meth:`attach` reads it from the optimizer
        (and refuses a different one given here). SGD momentum β makes the recorder keep the
        claimed velocity (module docstring); the record goes to ``State.optimizer``.
    d : int, optional
        Trainable parameters per model; required and only allowed when ``model`` is None.
    every : int, default 25
        Steps per logged block (block means form the time series).
    burn_in : float, default 0.5
        Fraction of the logs always discarded; MSER-5 may cut more (:mod:`thermocheck.stats`).
    queue_size, queue_every : int
        Direction snapshots kept for the entropy (0: none) and their spacing in steps.
    queue_storage : {"cpu", "device", "disk"}
        Where the queue lives: host memory (pinned when the weights are on a GPU, so pushes are
        asynchronous), the weights' device, or a float32 ``np.memmap`` file (``queue_path``, or a
        temporary file) for queues larger than memory; a push from a GPU to disk synchronises.
    queue_path : str or Path, optional
        The memmap file for ``queue_storage="disk"``.
    data : (x, y), optional
        The training set, for :meth:`measure_noise` and the scale-invariance check.
    batch_size : int, optional
        The training minibatch size; required with ``data``.
    loss_fn : callable, default ``F.cross_entropy``
        ``loss_fn(model(x), y)``, for the noise measurement and the scale-invariance check.
    noise_every : int, default 0
        With ``data``, measure the noise every so many steps inside :meth:`end` (a log point);
        0 leaves it to explicit :meth:`measure_noise` calls. ``E‖∇L(w̄)‖²`` is the mean over the
        measurements in the stationary window, so take many (dozens): it is as right-skewed over
        the stationary law as the trace (module docstring).
    noise_samples : int, default 8
        Minibatch gradients per measurement (vmapped in one pass for dense models).
    noise_full_batch : bool, default False
        Centre the measurement at the full-batch gradient (the paper's; one pass over ``data``
        each time) instead of at the minibatch mean.
    sample : (x, y), optional
        A minibatch for :func:`thermocheck.invariance.check_scale_invariance`; defaults to the
        first ``batch_size`` samples of ``data``. Given either, the recorder refuses
        (:class:`~thermocheck.errors.ScaleInvarianceError`, naming every parameter at fault) a
        model whose invariance is broken by its structure: a trainable output layer, a layer
        whose output no normalisation follows, an affine normalisation. It accepts one broken
        only by a normalisation's ε, whose effect falls as ``1/‖w‖²``: the check judges at 100 ×
        the current weights. Its measurements go to ``State.extra["scale_invariance"]``. Without
        either the recorder trusts the model.
    invariance_rtol : float, default 1e-3
        Tolerance of that check at 100 × the weights, where float32 round-off and what is left of
        ε are below 1e-6. Measured on the example's MLP (``examples/user_model``, float32, the
        first 32 digits, at torch's initialisation ``‖w‖ = 4.6`` and rescaled to ``‖w‖ = 1``):
        BatchNorm's ε = 1e-5 changes the loss by 1.2e-4 and 2.5e-3 at the current weights but by
        1.2e-7 and 3.5e-7 at 100 × (accepted); with LayerNorm instead, 6.5e-5 and 1.4e-3, then
        6.5e-8 and 1.3e-7. An unfrozen head, a layer without normalisation and an affine last
        BatchNorm change it by 9.0 at 100 ×; an affine first BatchNorm keeps the joint scaling
        invariant (a later BatchNorm follows), but its γ and β scaled alone change the loss by
        2.1e-2 and 1.5e-2. All four are refused, with the parameters named.
    device : torch.device or str, optional
        Device of the weights when ``model`` is None.
    substrate : str, default "user"
        Recorded in the states (the trainer passes ``"net"``).
    interpolation_loss : float, default 1e-3
        A mean training loss below this, or a last measured σ² below 1e-6 of the largest, is
        reported as interpolation: no stationary distribution.
    alpha, rtol : float
        Level and practical threshold of the stationarity test (:func:`stats.assess_stationarity`).
    seed : int, default 0
        Seeds the noise measurement's minibatch draws.
    """

    def __init__(
        self,
        model: nn.Module | None,
        protocol: str | Sequence[str],
        *,
        lr: float | Sequence[float] | None = None,
        wd: float | Sequence[float] | None = None,
        elr: float | Sequence[float] | None = None,
        radius: float | Sequence[float] | None = None,
        d: int | None = None,
        every: int = 25,
        burn_in: float = 0.5,
        queue_size: int = 0,
        queue_every: int = 25,
        queue_storage: str = "cpu",
        queue_path: str | Path | None = None,
        data: tuple[torch.Tensor, torch.Tensor] | None = None,
        batch_size: int | None = None,
        loss_fn: LossFn = F.cross_entropy,
        noise_every: int = 0,
        noise_samples: int = 8,
        noise_full_batch: bool = False,
        sample: tuple[torch.Tensor, torch.Tensor] | None = None,
        invariance_rtol: float = 1e-3,
        device: torch.device | str | None = None,
        substrate: str = "user",
        interpolation_loss: float = 1e-3,
        alpha: float = 1e-4,
        rtol: float = 1e-3,
        seed: int = 0,
        optimizer: Mapping[str, Any] | None = None,
    ) -> None:
        hp = {"lr": lr, "wd": wd, "elr": elr, "radius": radius}
        sizes = {len(v) for v in hp.values() if isinstance(v, Sequence)}
        if isinstance(protocol, Sequence) and not isinstance(protocol, str):
            sizes.add(len(protocol))
        if len(sizes) > 1:
            raise InvalidParameterError(f"hyperparameter arrays differ in length: {sorted(sizes)}")
        self.M = sizes.pop() if sizes else 1
        self.protocols = [protocol] * self.M if isinstance(protocol, str) else list(protocol)
        self.hp: dict[str, list[Any]] = {
            k: (list(v) if isinstance(v, Sequence) else [v] * self.M) for k, v in hp.items()}
        if min(every, queue_every) < 1 or min(queue_size, noise_every) < 0 or not 0 <= burn_in < 1:
            raise InvalidParameterError(
                f"every={every}, queue_every={queue_every} must be >= 1, queue_size={queue_size} "
                f"and noise_every={noise_every} >= 0, burn_in={burn_in} in [0, 1)"
            )
        check_choice("queue_storage", queue_storage, ("cpu", "device", "disk"))
        self.model = model
        self._params: list[nn.Parameter] = []
        if model is None:
            if d is None or device is None:
                raise InvalidParameterError("model=None (stacked weights) needs d and device")
            self.d, self.device = int(d), torch.device(device)
        else:
            if d is not None or self.M != 1:
                raise InvalidParameterError(
                    "a model is recorded alone: give scalar hyperparameters and no d"
                )
            self._params = [p for _, p in trainable_parameters(model)]
            self.d = sum(p.numel() for p in self._params)
            self.device = self._params[0].device
        if data is not None and batch_size is None:
            raise InvalidParameterError("data needs the training batch_size (the noise scale)")
        self.data, self.batch_size, self.loss_fn = data, batch_size, loss_fn
        self.noise_every, self.noise_samples, self.noise_full_batch = (
            noise_every, noise_samples, noise_full_batch
        )
        self._generator = torch.Generator().manual_seed(seed)
        check = sample if sample is not None or data is None else (
            data[0][:batch_size], data[1][:batch_size]
        )
        self.invariance: dict[str, float] | None = None
        if model is not None and check is not None:
            self.invariance = check_scale_invariance(
                model, check, loss_fn=loss_fn, rtol=invariance_rtol, option="invariance_rtol"
            )
        for p in self.protocols:
            theory.check_protocol(p)
        self.spec: GridSpec | None = None
        if model is None or not self._missing():
            self._build_spec()
        self.optimizer: dict[str, Any] = check_optimizer(optimizer)
        self._optimizer_given = optimizer is not None
        self.every, self.burn_in, self.substrate = every, burn_in, substrate
        self.queue_size, self.queue_every = queue_size, queue_every
        self.interpolation_loss, self.alpha, self.rtol = interpolation_loss, alpha, rtol
        self.step_count = 0
        self._hist = torch.zeros(len(QUANTITIES), 64, self.M, dtype=torch.float64,
                                 device=self.device)
        self._slots = 0
        self._open = False
        self._pending_loss: torch.Tensor | None = None
        self._queue = self._make_queue(queue_storage, queue_path)
        self._queue_steps: list[int] = []
        self._noise: list[tuple[int, NoiseEstimate]] = []
        self._ptrs: list[int] = []
        self._views: list[torch.Tensor] = []
        self._allocate()

    # -- hyperparameters and the optimizer ---------------------------------------------------------
    def _missing(self) -> list[str]:
        """The protocols' hyperparameters (``theory.AXES``) not given yet."""
        return sorted({name for i, p in enumerate(self.protocols) for name in theory.AXES[p]
                       if self.hp[name][i] is None})

    def _build_spec(self) -> None:
        self.spec = GridSpec.build(self.protocols, **self.hp, device=self.device,
                                   dtype=torch.float64)

    @property
    def _momentum(self) -> float:
        """The claimed SGD momentum β (0 for plain SGD and AdamW)."""
        return float(self.optimizer.get("momentum", 0.0)) if self.optimizer["name"] == "sgd" \
            else 0.0

    def _allocate(self) -> None:
        """Step buffers for the Gram rows the claim needs: (w, g), and v with SGD momentum.

        ``_raw[every, M, rows² + 1]`` holds each step's Gram matrix and loss; with a model,
        ``_X[rows, d]`` holds the flattened weights, gradient and claimed velocity (zero at the
        start, as torch's momentum buffer); stacked models keep their velocities ``[M, P]``,
        made at the first :meth:`begin`."""
        rows = 3 if self._momentum > 0 else 2
        self._rows = rows
        self._raw = torch.full((self.every, self.M, rows * rows + 1), math.nan,
                               dtype=torch.float64, device=self.device)
        self._vel: torch.Tensor | None = None
        if self._params:
            self._X = torch.zeros(rows, self.d, dtype=self._params[0].dtype, device=self.device)
            self._read_model(self._X, grads=False)
            if rows == 3:
                self._vel = self._X[2:]

    def _make_queue(self, storage: str, path: str | Path | None) -> torch.Tensor:
        shape = (self.M, self.queue_size, self.d)
        if storage == "disk":
            file = Path(path) if path is not None else Path(
                tempfile.NamedTemporaryFile(suffix=".f32", delete=False).name
            )
            self.queue_file: Path | None = file
            mm = np.memmap(file, dtype=np.float32, mode="w+", shape=shape) if self.queue_size else (
                np.zeros(shape, np.float32)
            )
            return torch.from_numpy(mm)
        self.queue_file = None
        dev = self.device if storage == "device" else torch.device("cpu")
        pin = dev.type == "cpu" and self.device.type == "cuda"
        return torch.zeros(shape, dtype=torch.float32, device=dev, pin_memory=pin)

    # -- per step: raw scalars on device -----------------------------------------------------------
    def _read_model(self, X: torch.Tensor, weights: bool = True, grads: bool = True) -> None:
        """Flatten the model's weights into ``X[0]`` and its ``.grad`` into ``X[1]``.

        Flat views of the weights are kept between steps (optimizers update in place) and rebuilt
        when a parameter's storage changes (``p.data = …``) or is not contiguous.
        """
        if weights:
            ptrs = [p.data_ptr() for p in self._params]
            if ptrs != self._ptrs:
                self._views = [p.detach().reshape(-1) for p in self._params]
                contiguous = all(p.is_contiguous() for p in self._params)
                self._ptrs = ptrs if contiguous else []
            torch.cat(self._views, out=X[0])
        if grads:
            torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if p.grad is None
                       else p.grad.reshape(-1) for p in self._params], out=X[1])

    def _require_model(self, what: str) -> None:
        if self.model is None:
            raise InvalidParameterError(f"{what} needs a recorder made with a model")

    @staticmethod
    def _gram(X: torch.Tensor) -> torch.Tensor:
        """``X Xᵀ`` over the last axis: the Gram matrix of ``X = (w, g)`` (``[[‖w‖², ⟨w, g⟩],
        [⟨g, w⟩, ‖g‖²]]``) or ``(w, g, v)``, batched over leading axes. One matrix product, in
        float32 for float32 weights on a CPU (summation error ~1e-6 relative: it enters the norm
        balance multiplied by ``2η_kλ``, far below the balance's statistical error), in float64
        elsewhere (TF32 never applies)."""
        if X.dtype != torch.float32 or X.device.type != "cpu":
            X = X.to(torch.float64)
        return X @ X.transpose(-1, -2)

    def _open_step(self, X: torch.Tensor, W: torch.Tensor) -> None:
        """Step k from ``X`` = (w_k, g_k[, v_k]) (``[M, rows, P]``, or ``[rows, d]`` for a model)
        and the weights ``W[M, P]`` (pushed to the queue when due); ``‖w_{k+1}‖²`` is the next
        step's ``‖w‖²``. Then the claimed velocity moves on, ``v ← βv + g_k + λw_k``."""
        if self._open:
            raise InvalidParameterError("begin() called twice: close each step with end()")
        if self.spec is None:
            raise InvalidParameterError(
                f"{', '.join(self._missing())} not known: give them to Recorder(...) or "
                f"attach(optimizer) before the first step")
        n = self._rows * self._rows
        self._raw[self.step_count % self.every, :, :n].copy_(self._gram(X).reshape(self.M, n))
        if self._vel is not None:
            decay = self.spec.wd[:, None].to(X.dtype)
            self._vel.mul_(self._momentum).add_(X[..., 1, :]).addcmul_(decay, X[..., 0, :])
        if self.queue_size and self.step_count % self.queue_every == 0:
            slot = len(self._queue_steps) % self.queue_size
            self._queue[:, slot].copy_(W, non_blocking=True)
            self._queue_steps.append(self.step_count)
        self._open = True

    def begin(self, W: torch.Tensor | None = None, G: torch.Tensor | None = None) -> None:
        """Open step k: ``W[M, P]`` = w_k, ``G[M, P]`` = g_k (weight decay excluded), both read
        from the model and its ``.grad`` when not given. Pushes ``w_k`` to the queue when due."""
        if W is None and G is None:
            self._require_model("begin() without arrays")
            self._read_model(self._X)
            self._open_step(self._X, self._X[:1])
        elif W is None or G is None:
            raise InvalidParameterError("give both W and G, or neither (read from the model)")
        else:
            W = W.detach()
            rows = [W, G.detach()]
            if self._rows == 3:
                if self._vel is None:
                    self._vel = torch.zeros_like(W)
                rows.append(self._vel)
            self._open_step(torch.stack(rows, 1), W)

    def end(self, loss: torch.Tensor | None = None) -> None:
        """Close step k, after the update, with the training loss (``[M]`` or a scalar tensor;
        pass it without ``.item()``). ``‖w_{k+1}‖²`` is read at the next :meth:`begin`."""
        if not self._open:
            raise InvalidParameterError("end() without begin(): open each step with begin()")
        k = self.step_count % self.every
        if loss is not None:
            self._raw[k, :, -1] = loss.detach().reshape(self.M)
        self._open = False
        self.step_count += 1
        if k == self.every - 1:
            self._close_block()
        if self.noise_every and self.data is not None and self.step_count % self.noise_every == 0:
            self.measure_noise()

    @property
    def step_open(self) -> bool:
        """Whether :meth:`begin` has opened a step that :meth:`end` has not closed yet."""
        return self._open

    def step(self, loss: torch.Tensor | None = None) -> None:
        """Record the step just taken: call right after ``optimizer.step()`` (and after the
        projection on the fixed sphere). ``loss`` is the minibatch loss tensor (no ``.item()``)."""
        self._require_model("step()")
        self._read_model(self._X, weights=False)  # X[0] holds w_k since the previous call
        self._open_step(self._X, self._X[:1])
        self.end(loss)
        self._read_model(self._X, grads=False)  # w_{k+1}: the next call's w_k

    def attach(self, optimizer: torch.optim.Optimizer) -> list[RemovableHandle]:
        """Read the optimizer's hyperparameters and record every ``optimizer.step()`` through its
        step hooks (pre: w_k and g_k; post: closes the step with the loss given to
        :meth:`log_loss`). Returns the hook handles (``handle.remove()`` detaches).

        :func:`read_optimizer` reads SGD's lr, momentum, nesterov, dampening and weight_decay, or
        AdamW's lr, betas, eps and weight_decay; the record goes to ``State.optimizer`` and, with
        momentum, the norm-balance terms use the claimed update with its velocity (module
        docstring). ``lr`` (fixed LR) and ``wd`` not given to the recorder are taken from the
        optimizer. Refused, with the parameter and the values named: whatever
        :func:`read_optimizer` refuses; ``lr`` or ``wd`` given to the recorder with another value
        than the optimizer's; on the fixed sphere a weight_decay ≠ 0 or an lr other than
        ``η_eff r²``; AdamW under another protocol than fixed LR (its norm equilibrium, Kosson et
        al. 2024, is a fixed-LR result); an ``optimizer`` record given to the recorder that differs;
        an attach after steps were recorded. A hyperparameter changed later (a scheduler) is
        refused at the next step, since every protocol keeps its hyperparameters constant; under
        fixed ELR the loop sets ``lr = η_eff ‖w_k‖²`` itself, so lr is neither read nor watched.
        """
        self._require_model("attach()")
        if self.step_count:
            raise InvalidParameterError(f"attach() after {self.step_count} recorded steps: "
                                        f"attach the optimizer before the first step")
        record, found = read_optimizer(optimizer, self._params)
        self._claim(record, found)
        ids = {id(p) for p in self._params}
        skip = _IMPLEMENTATION_KEYS | ({"lr"} if self.protocols[0] == "fixed_elr" else set())
        watched = [(g, {k: v for k, v in g.items() if k not in skip})
                   for g in optimizer.param_groups if ids & {id(p) for p in g["params"]}]

        def pre(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            # args are step()'s positional arguments, the optimizer itself first
            if args[1:] or kwargs.get("closure") is not None:
                raise InvalidParameterError(
                    "attach() needs optimizer.step() without a closure (the closure computes the "
                    "gradient after the pre-hook); call recorder.step() after the step instead"
                )
            _check_unchanged(watched, self.step_count)
            self.begin()

        def post(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.end(self._pending_loss)
            self._pending_loss = None

        return [optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post)]

    def _claim(self, record: dict[str, Any], found: dict[str, float]) -> None:
        """Take the attached optimizer's record and hyperparameters (:meth:`attach`)."""
        protocol = self.protocols[0]
        if self._optimizer_given and record != self.optimizer:
            raise InvalidParameterError(f"optimizer={self.optimizer!r} was given to the Recorder "
                                        f"but the attached optimizer is {record!r}")
        if record["name"] == "adamw" and protocol != "fixed_lr":
            raise InvalidParameterError(f"protocol={protocol!r} with AdamW is not modelled: its "
                                        f"norm equilibrium (Kosson et al., 2024) is for fixed_lr")
        hp: dict[str, list[Any]] = {k: list(v) for k, v in self.hp.items()}
        if protocol == "fixed_sphere":
            _check_sphere_step(found, hp["elr"][0], hp["radius"][0])
        else:
            _agree(hp, "wd", "weight_decay", found["wd"])
            if protocol == "fixed_lr":
                _agree(hp, "lr", "lr", found["lr"])
        self.hp, self.optimizer = hp, record
        self._build_spec()
        self._allocate()

    def log_loss(self, loss: torch.Tensor) -> None:
        """The current step's training loss, for :meth:`attach` (any time before the step ends)."""
        self._pending_loss = loss.detach()

    def _update_coefficients(self) -> tuple[float, torch.Tensor, float]:
        """``(a, b, c)`` of the claimed update ``u = a g + b w + c v``: heavy ball
        ``(1, λ, β)``, Nesterov ``(1 + β, (1 + β)λ, β²)``; plain SGD ``(1, λ, 0)``."""
        assert self.spec is not None
        beta = self._momentum
        a, c = (1 + beta, beta * beta) if self.optimizer.get("nesterov") else (1.0, beta)
        return a, a * self.spec.wd, c

    def _close_block(self) -> None:
        """Block means of :data:`QUANTITIES` from the raw scalars into the device history.

        With ``u = a g + b w + c v`` (:meth:`_update_coefficients`; ``v = 0`` without momentum):
        norm balance ``η_k² ‖u‖² − 2η_k ⟨w, u⟩`` with ``⟨w, g⟩ = 0`` (P2; at β = 0 it is
        ``(1 − η_k λ)²‖w‖² + η_k²‖g‖² − ‖w‖²``, Eq. 111), λ_eff of Eq. 83 for ``q = a g + c v`` per
        effective step ``η_k/(1 − β)``, and the update residual against the exact
        ``‖w − η_k u‖²`` (the sphere's radius² after a projection)."""
        assert self.spec is not None
        n = self._rows
        gram = self._raw[..., : n * n].unflatten(-1, (n, n))
        sq, wg, gsq, loss = gram[..., 0, 0], gram[..., 0, 1], gram[..., 1, 1], self._raw[..., -1]
        wv, gv, vv = (gram[..., 0, 2], gram[..., 1, 2], gram[..., 2, 2]) if n == 3 else (0, 0, 0)
        nxt = torch.cat([sq[1:], torch.full_like(sq[:1], math.nan)])  # ‖w_{k+1}‖²
        s = self.spec
        a, b, c = self._update_coefficients()
        eta = s.step_size(sq)
        wu = b * sq + c * wv  # ⟨w, u⟩ with ⟨w, g⟩ = 0 (P2)
        uu = a * a * gsq + b * b * sq + c * c * vv + 2 * b * c * wv + 2 * a * c * gv
        balance = eta * (eta * uu - 2 * wu)  # exact one-step change of ‖w‖² for g ⊥ w
        r = sq.sqrt()
        wq, qq = a * wg + c * wv, a * a * gsq + c * c * vv + 2 * a * c * gv
        stepped = (sq - 2 * eta * wq + eta**2 * qq).clamp_min(0).sqrt()
        lam = (stepped - r) * (1 - self._momentum) / (eta * r)  # Eq. 83
        exact = sq + balance - 2 * eta * a * wg * (1 - eta * b)
        claimed = torch.where(s.project, s.radius**2, exact)
        cos = wg / (r * gsq.sqrt()).clamp_min(1e-300)
        every_step = torch.stack([sq, r, gsq, unit_radius(sq, gsq), balance, sq + balance, lam,
                                  cos, sq * gv if n == 3 else torch.zeros_like(sq)])
        some_steps = torch.stack([loss, (nxt - claimed) / sq])
        if self._slots == self._hist.shape[1]:
            self._hist = torch.cat([self._hist, torch.zeros_like(self._hist)], 1)
        self._hist[:, self._slots] = torch.cat([every_step.mean(1), some_steps.nanmean(1)])
        self._raw.fill_(math.nan)
        self._slots += 1

    # -- gradient noise (log points) ---------------------------------------------------------------
    def add_noise(self, estimate: NoiseEstimate) -> None:
        """Attach a gradient-noise measurement taken now (after :meth:`end` of the last step)."""
        self._noise.append((self.step_count, estimate))

    def measure_noise(self, **kwargs: Any) -> NoiseEstimate:
        """:func:`noise` of the recorded model on ``data`` now, attached with :meth:`add_noise`;
        ``kwargs`` override :func:`noise`'s options (e.g. ``n``, ``method``)."""
        self._require_model("measure_noise()")
        if self.data is None or self.batch_size is None:
            raise InvalidParameterError("measure_noise() needs the recorder's data and batch_size")
        assert self.model is not None
        options = {"loss_fn": self.loss_fn, "n": self.noise_samples,
                   "full_batch": self.noise_full_batch, "generator": self._generator, **kwargs}
        est = noise(self.model, self.data, batch_size=self.batch_size, **options)
        self.add_noise(est)
        return est

    # -- host side ---------------------------------------------------------------------------------
    def sync(self) -> dict[str, np.ndarray]:
        """The logged block means, ``{quantity: array[blocks, M]}`` (one device→host copy)."""
        h = self._hist[:, : self._slots].cpu().numpy()
        return dict(zip(QUANTITIES, h, strict=True))

    def states(self, *, extra: dict[str, Any] | None = None, entropy: bool = True) -> list[State]:
        """One :class:`State` per model, measured over its stationary window.

        Stationarity is judged per series (``State.stationary_series``), each by
        :func:`thermocheck.stats.assess_stationarity` on its whole logged series (MSER-5 finds the
        end of the transient, a slope test the drift, at level ``alpha`` split over the series):
        ``radius`` on the mean radius, ``loss`` on the loss (when given), ``noise`` on the
        unit-radius gradient norm ``‖w_k‖²‖g_k‖²`` whose mean gives σ², and ``directions`` by the
        loss's verdict (the gradient norm's without a loss), since both are functions of w̄ alone
        (P1). A loss that still drifts therefore leaves V1 and the norm balance, which need the
        radius and the noise, to decide. The window starts after ``burn_in`` and after the MSER-5
        truncation of every stationary series (of every series when none is). Means carry
        batch-means standard errors (:func:`thermocheck.stats.batch_means`), with the number of
        batches as ``n``. The noise: ``grad_sq`` is the mean of the measurements taken in the
        window (batch means over them, or ``sd/√k`` when fewer than 10), clipped at 0, and
        ``σ² = (E‖w_k‖²‖g_k‖² − E‖∇L(w̄)‖²)/(d − 1)`` (module docstring), errors combined in
        quadrature. The entropy is that of the window's queued directions (:func:`_entropy`).

        Not stationary, with the reason: the whole state when the run diverged (``diverged=True``)
        or has fewer than ``MIN_LOGS`` logs; the noise when no noise measurement is in yet or none
        is left once the gradient term is taken out; the noise and the directions when the model
        interpolates (:data:`INTERPOLATION_REASON`); each series that fails its test.
        """
        hist = self.sync()
        return [self._state(m, hist, extra or {}, entropy) for m in range(self.M)]

    def grid(self, *, extra: dict[str, Any] | None = None, entropy: bool = True) -> StateGrid:
        """:meth:`states` as a :class:`~thermocheck.states.StateGrid` (the models must make one:
        one protocol and one ``d``, distinct hyperparameters)."""
        return StateGrid(self.states(extra=extra, entropy=entropy))

    def state(self, m: int = 0, **kwargs: Any) -> State:
        """The state of model ``m`` (default: the only one of a user's loop)."""
        return self.states(**kwargs)[m]

    def _noise_terms(self, m: int, first_step: int) -> tuple[Estimate | None, dict[str, Any]]:
        """``E‖∇L(w̄)‖²`` of model ``m`` from the noise measurements taken from ``first_step`` on
        (the latest one when none is), and diagnostics: the measurements' own σ², the pooled
        effective rank."""
        snaps = [e for s, e in self._noise if s >= first_step]
        info: dict[str, Any] = {"noise_measurements": len(snaps)}
        if not snaps:
            if not self._noise:
                return None, info
            snaps = [self._noise[-1][1]]
            info["noise_outside_window"] = True

        def series(name: str) -> np.ndarray:
            return np.array([getattr(e, name)[m] for e in snaps])

        def mean(x: np.ndarray) -> Estimate:
            return window_estimate(x) if x.size >= MIN_BATCHES else _spread(x)

        grad_sq, s2 = mean(series("grad_sq")), mean(series("sigma2"))
        den = float(series("rank_den").sum())  # 0 when measurements had < 2 deviations each
        rank = float(series("rank_num").sum()) / den if den > 0 else None
        info.update(sigma2_measured=s2.value, sigma2_measured_stderr=s2.stderr, eff_rank=rank,
                    eff_rank_over_d=None if rank is None else rank / (self.d - 1))
        history = np.array([e.sigma2[m] for _, e in self._noise])
        info["noise_collapsed"] = bool(history[-1] < 1e-6 * history.max())
        return Estimate(max(grad_sq.value, 0.0), grad_sq.stderr, grad_sq.n), info

    def _state(
        self, m: int, hist: dict[str, np.ndarray], extra: dict[str, Any], entropy: bool
    ) -> State:
        series = {q: hist[q][:, m] for q in QUANTITIES}
        n = series["sq_norm"].size
        if n < 2:
            raise InvalidParameterError(
                f"only {n} logged blocks: run at least {2 * self.every} steps before state()"
            )
        p = self.protocols[m]
        hp: dict[str, Any] = {k: v[m] for k, v in self.hp.items() if v[m] is not None}
        if not all(np.isfinite(series[q]).all() for q in ("sq_norm", "step_grad_sq")):
            return State(protocol=p, d=self.d, sigma2=Estimate(np.finfo(float).tiny),
                         substrate=self.substrate, stationary=False, diverged=True,
                         reason="diverged: non-finite weights or gradients (step too large)",
                         extra={"sigma2_placeholder": True, **extra}, optimizer=self.optimizer,
                         **hp)
        judgement = judge({name: series[q] for name, q in _JUDGED.items()}, alpha=self.alpha,
                          rtol=self.rtol, burn_in=self.burn_in)
        start, flags, reasons = judgement.start, judgement.flags, judgement.reasons
        details = judgement.details
        window = {q: x[start:] for q, x in series.items()}
        est = {q: window_estimate(x) for q, x in window.items() if np.isfinite(x).all()}
        first_step = start * self.every
        grad_sq, info = self._noise_terms(m, first_step)
        info.update(window_start_iteration=first_step, logged_blocks=n, window_blocks=n - start,
                    steps=self.step_count, stationarity=details)
        if self.invariance is not None:
            info["scale_invariance"] = self.invariance
        trace = est["unit_grad_sq"]
        d1 = self.d - 1
        s2 = (trace.value - (grad_sq.value if grad_sq else 0.0)) / d1
        s2_se = math.hypot(trace.stderr, grad_sq.stderr if grad_sq else 0.0) / d1
        loss = est.get("loss")
        if grad_sq is None:
            flags["noise"] = False
            reasons.append("no gradient-noise measurement yet: call measure_noise() (or pass data "
                           "and noise_every) so that E‖∇L(w̄)‖² can be taken out of the trace")
        elif s2 <= 0:
            flags["noise"] = False
            reasons.append(f"no gradient noise resolved: E‖w_k‖²‖g_k‖² = {trace.value:.4g} ± "
                           f"{trace.stderr:.2g} does not exceed E‖∇L(w̄)‖² = {grad_sq.value:.4g}")
        if info.get("noise_collapsed") or (loss and loss.value < self.interpolation_loss):
            flags.update(noise=False, directions=False)
            reasons.insert(0, INTERPOLATION_REASON)
        entropy_est = self._window_entropy(m, first_step) if self.queue_size and entropy else None
        info.update(trace_per_step=trace.value, trace_per_step_stderr=trace.stderr,
                    radial_cosine=est["radial_cos"].value,
                    queue_snapshots=0 if entropy_est is None else entropy_est.n)
        sgd = self.optimizer["name"] == "sgd"  # AdamW's update is not u = a g + b w + c v
        if sgd and "update_residual" in est:
            info["update_residual"] = est["update_residual"].value
        if self._momentum > 0 and sgd:
            memory = est["unit_vel_grad"]
            info["velocity_grad"] = {"value": memory.value, "stderr": memory.stderr,
                                     "n": memory.n}
        state = State(
            protocol=p,
            d=self.d,
            sigma2=Estimate(max(s2, np.finfo(float).tiny), s2_se, trace.n),
            loss=loss,
            sq_norm=est["sq_norm"],
            mean_radius=est["mean_radius"],
            grad_sq=grad_sq,
            norm_balance=est["norm_balance"] if sgd and p != "fixed_sphere" else None,
            lambda_eff=est["lambda_eff"] if sgd else None,
            sphere_entropy=entropy_est,
            substrate=self.substrate,
            energy_is_loss=False,
            stationary=not reasons,
            reason="; ".join(reasons),
            stationary_series=flags,
            extra={**info, **extra},
            optimizer=self.optimizer,
            **hp,
        )
        return state.replace(extra={**state.extra, "compressibility": _compressibility(state)})

    def _window_entropy(self, m: int, first_step: int) -> Estimate | None:
        """:func:`_entropy` of model ``m``'s snapshots taken from ``first_step`` on (oldest first;
        the ring holds the last ``queue_size``); None with fewer than 10 or non-finite ones."""
        total = len(self._queue_steps)
        slots = [i % self.queue_size for i in range(max(0, total - self.queue_size), total)
                 if self._queue_steps[i] >= first_step]
        if len(slots) < 10:
            return None
        snaps = self._queue[m].index_select(0, torch.tensor(slots, device=self._queue.device))
        return _entropy(snaps) if bool(torch.isfinite(snaps).all()) else None

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (the queue included)."""
        sd: dict[str, Any] = {
            "raw": self._raw,
            "hist": self._hist,
            "slots": self._slots,
            "step": self.step_count,
            "open": self._open,
            "queue": self._queue,
            "queue_steps": self._queue_steps,
            "noise": [(s, e.__dict__) for s, e in self._noise],
            "generator": self._generator.get_state(),
            "optimizer": self.optimizer,
        }
        if self._params:
            sd["weights"] = self._X[0]
        if self._vel is not None:
            sd["velocity"] = self._vel
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        self._raw.copy_(sd["raw"])
        self._hist = sd["hist"].to(self.device)
        self._slots, self.step_count, self._open = sd["slots"], sd["step"], sd["open"]
        self._queue.copy_(sd["queue"])
        self._queue_steps = list(sd["queue_steps"])
        self._noise = [(s, NoiseEstimate(**e)) for s, e in sd["noise"]]
        self._generator.set_state(sd["generator"])
        if sd.get("optimizer", self.optimizer) != self.optimizer:
            raise InvalidParameterError(f"the checkpoint records optimizer={sd['optimizer']!r}, "
                                        f"this recorder {self.optimizer!r}")
        if self._params:
            self._X[0].copy_(sd["weights"])
        if "velocity" in sd:
            if self._vel is None:
                self._vel = torch.zeros_like(sd["velocity"], device=self.device)
            self._vel.copy_(sd["velocity"])


def _compressibility(state: State) -> float | None:
    """``Z = pV/(RT)`` with the measured σ², V and (on the sphere) λ_eff: 1 for the ideal gas."""
    try:
        T = state.temperature
        return float(state.pressure * state.volume.value / (theory.gas_constant(state.d) * T))
    except (InvalidParameterError, ZeroDivisionError):
        return None
