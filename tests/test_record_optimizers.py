"""Recorder.attach reads the optimizer (SGD, momentum, Nesterov, AdamW), refuses what it does not
model, and measures the norm balance of the update actually claimed (docs/optimizers.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from thermocheck import laws
from thermocheck.errors import InvalidParameterError
from thermocheck.record import NoiseEstimate, Recorder
from thermocheck.states import State

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

F64 = torch.float64


class NoisySphere(nn.Module):
    """A scale-invariant loss whose minibatch gradient is pure isotropic noise of σ² = 1 at unit
    radius (Eq. 24 with ∇L = 0): ``L_B(w) = ξ_Bᵀ w/‖w‖``, ``ξ_B ~ N(0, I_d)``, so
    ``∇L_B(w) = P_w ξ_B/‖w‖`` and ``Tr Σ_w̄ = d − 1``. ``w`` is stored as two parameters."""

    def __init__(self, d: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.parts = nn.ParameterList(torch.randn(d, generator=gen, dtype=F64).chunk(2))

    @property
    def w(self) -> torch.Tensor:
        return torch.cat(list(self.parts))

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        w = self.w
        return xi @ w / w.norm()


def _known_noise() -> NoiseEstimate:
    """The noise of :class:`NoisySphere`, known exactly: σ² = 1, ∇L(w̄) = 0."""
    one = np.ones(1)
    return NoiseEstimate(one, 0 * one, 0 * one, one, one, 2)


def _run(model: NoisySphere, opt: torch.optim.Optimizer, rec: Recorder, steps: int, *,
         hooks: bool = True, extra_l2: float = 0.0, seed: int = 3) -> None:
    """A user's loop: ``extra_l2`` adds ``extra_l2/2 ‖w‖²`` to the loss (a second weight decay).
    The loss ``ξᵀw̄`` is pure noise, so it is not logged: the directions' stationarity is judged
    on the gradient norm."""
    gen = torch.Generator().manual_seed(seed)
    for k in range(steps):
        xi = torch.randn(model.w.shape[0], generator=gen, dtype=F64)
        opt.zero_grad()
        (model(xi) + extra_l2 / 2 * model.w.square().sum()).backward()
        if hooks:
            opt.step()
        else:
            opt.step()
            rec.step()
        if k % 10 == 0:
            rec.add_noise(_known_noise())


# -- what attach reads -----------------------------------------------------------------------------
SGD_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": (dict(lr=0.05, weight_decay=0.01), {"name": "sgd", "momentum": 0.0,
                                                  "nesterov": False}),
    "momentum": (dict(lr=0.05, weight_decay=0.01, momentum=0.9),
                 {"name": "sgd", "momentum": 0.9, "nesterov": False}),
    "nesterov": (dict(lr=0.05, weight_decay=0.01, momentum=0.5, nesterov=True),
                 {"name": "sgd", "momentum": 0.5, "nesterov": True}),
}


@pytest.mark.parametrize("case", sorted(SGD_CASES))
def test_attach_reads_sgd_and_records_the_update_it_applies(case: str) -> None:
    """lr, wd and the optimizer record come from the optimizer; the claimed update, built from
    the recorder's own velocity, is the one torch applies (update residual at round-off), and
    the states carry the record."""
    options, record = SGD_CASES[case]
    model = NoisySphere(12, seed=0)
    opt = torch.optim.SGD(model.parameters(), **options)
    rec = Recorder(model, "fixed_lr", every=5)
    rec.attach(opt)
    assert rec.optimizer == record
    assert (rec.hp["lr"], rec.hp["wd"]) == ([0.05], [0.01])
    _run(model, opt, rec, 40)
    h = rec.sync()
    assert np.abs(h["update_residual"]).max() < 1e-12
    state = rec.state(entropy=False)
    assert state.optimizer == record and (state.lr, state.wd) == (0.05, 0.01)
    back = State.from_dict(state.to_dict())
    assert back.optimizer == record


def test_attach_reads_adamw() -> None:
    """AdamW: lr, betas, eps, weight_decay; its states carry no SGD norm balance or λ_eff."""
    model = NoisySphere(12, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99), eps=1e-7,
                            weight_decay=0.1)
    rec = Recorder(model, "fixed_lr", every=5)
    rec.attach(opt)
    _run(model, opt, rec, 20)
    state = rec.state(entropy=False)
    assert state.optimizer == {"name": "adamw", "betas": [0.8, 0.99], "eps": 1e-7}
    assert (state.lr, state.wd) == (1e-3, 0.1)
    assert state.norm_balance is None and state.lambda_eff is None
    assert "update_residual" not in state.extra


def test_attach_agrees_with_the_recorders_own_values() -> None:
    """The same lr and wd given to both are accepted (to float32 resolution)."""
    model = NoisySphere(12, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4, momentum=0.9)
    rec = Recorder(model, "fixed_lr", lr=float(np.float32(0.1)), wd=5e-4)
    rec.attach(opt)
    assert rec.optimizer["momentum"] == 0.9


# -- what attach refuses ---------------------------------------------------------------------------
def _sgd(**kw: Any) -> Callable[[NoisySphere], torch.optim.Optimizer]:
    return lambda m: torch.optim.SGD(m.parameters(), **{"lr": 0.1, "weight_decay": 0.01, **kw})


def _groups(m: NoisySphere) -> torch.optim.Optimizer:
    first, second = list(m.parts)
    groups: list[dict[str, Any]] = [{"params": [first]},
                                    {"params": [second], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=0.1, weight_decay=0.01)


REFUSED: dict[str, tuple[Callable[[NoisySphere], torch.optim.Optimizer], dict[str, Any], str]] = {
    "dampening": (_sgd(momentum=0.9, dampening=0.1), {}, r"dampening=0\.1 .*dampening=0\b"),
    "unknown class": (lambda m: torch.optim.RMSprop(m.parameters()), {}, "RMSprop"),
    "not every weight": (lambda m: torch.optim.SGD(list(m.parts)[:1], lr=0.1), {},
                         "does not update every trainable parameter"),
    "coupled adam": (lambda m: torch.optim.Adam(m.parameters(), weight_decay=0.01), {},
                     r"torch.optim.Adam with weight_decay=0\.01 .*AdamW"),
    "amsgrad": (lambda m: torch.optim.AdamW(m.parameters(), amsgrad=True), {}, "amsgrad=True"),
    "maximize": (_sgd(maximize=True), {}, "maximize=True"),
    "momentum 1": (_sgd(momentum=1.0), {}, r"momentum=1\.0 .*\[0, 1\)"),
    "groups": (_groups, {}, r"differ in weight_decay: 0\.01 vs 0\.0"),
    "lr twice": (_sgd(), {"lr": 0.2}, r"lr=0\.2 .*lr=0\.1"),
    "wd twice": (_sgd(), {"wd": 0.02}, r"wd=0\.02 .*weight_decay=0\.01"),
    "no weight decay": (_sgd(weight_decay=0.0), {}, r"weight_decay=0\.0 is invalid"),
    "claim differs": (_sgd(momentum=0.9), {"optimizer": {"name": "sgd"}},
                      r"optimizer=.*'momentum': 0\.0.*'momentum': 0\.9"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_attach_refuses_what_it_does_not_model_naming_the_parameter(case: str) -> None:
    make, given, message = REFUSED[case]
    model = NoisySphere(6, seed=0)
    rec = Recorder(model, "fixed_lr", **given)
    with pytest.raises(InvalidParameterError, match=message):
        rec.attach(make(model))


def test_attach_refuses_protocol_mismatches() -> None:
    """AdamW outside fixed LR; weight decay or a step other than η_eff r² on the sphere."""
    model = NoisySphere(6, seed=0)
    with pytest.raises(InvalidParameterError, match="protocol='fixed_elr' with AdamW"):
        Recorder(model, "fixed_elr", elr=0.1).attach(torch.optim.AdamW(model.parameters()))
    sphere = Recorder(model, "fixed_sphere", elr=0.1, radius=2.0)
    with pytest.raises(InvalidParameterError, match=r"weight_decay=0\.01 .*fixed sphere"):
        sphere.attach(_sgd()(model))
    with pytest.raises(InvalidParameterError, match=r"lr=0\.1 .*η_eff r² = 0\.4"):
        sphere.attach(_sgd(weight_decay=0.0)(model))
    sphere.attach(_sgd(lr=0.4, weight_decay=0.0)(model))


def test_attach_refuses_late_attachment_and_changed_hyperparameters() -> None:
    """An attach after recorded steps, and an lr changed by a scheduler, are refused."""
    model = NoisySphere(6, seed=0)
    opt = _sgd(momentum=0.9)(model)
    rec = Recorder(model, "fixed_lr", every=5)
    rec.attach(opt)
    _run(model, opt, rec, 3)
    with pytest.raises(InvalidParameterError, match="after 3 recorded steps"):
        rec.attach(opt)
    opt.param_groups[0]["lr"] = 0.05  # what a scheduler does
    with pytest.raises(InvalidParameterError, match=r"lr changed from 0\.1 to 0\.05 at step 3"):
        _run(model, opt, rec, 1)


def test_steps_without_the_hyperparameters_are_refused() -> None:
    model = NoisySphere(6, seed=0)
    rec = Recorder(model, "fixed_lr", wd=0.01)
    opt = _sgd()(model)
    with pytest.raises(InvalidParameterError, match="lr not known"):
        _run(model, opt, rec, 1, hooks=False)


# -- the momentum norm balance on a user's loop ---------------------------------------------------
#: η = 0.02, λ = 0.05, β = 0.9: equivalent rate η/(1 − β) = 0.2, so the radius relaxes within
#: about 1/(2 η λ/(1 − β)) = 50 steps; 4000 steps logged every 10 leave 200 logs after burn-in
#: (at 2000 steps MSER-5 put the window in the run's last half on 3 of 16 seeds, at 4000 on none).
#: At d = 1000 the per-step balance terms fluctuate little (relative ~1/√d): a decay doubled by
#: an L2 term in the loss leaves a mean residual 2ηλE‖w‖² = 0.064 against a tolerance of 0.012
#: (measured, seed 3); at d = 20 the same defect sat inside the tolerance.
LOOP = {"lr": 0.02, "weight_decay": 0.05, "momentum": 0.9}


def _momentum_state(*, nesterov: bool = False, extra_l2: float = 0.0, hooks: bool = True,
                    steps: int = 4000) -> State:
    model = NoisySphere(1000, seed=1)
    opt = torch.optim.SGD(model.parameters(), nesterov=nesterov, **LOOP)  # type: ignore[arg-type]
    if hooks:
        rec = Recorder(model, "fixed_lr", every=10)
        rec.attach(opt)
    else:  # told nothing about the optimizer: plain SGD is claimed
        rec = Recorder(model, "fixed_lr", lr=LOOP["lr"], wd=LOOP["weight_decay"], every=10)
    _run(model, opt, rec, steps, hooks=hooks, extra_l2=extra_l2)
    return rec.state(entropy=False)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_norm_balance_and_v1_hold_on_a_correct_loop(nesterov: bool) -> None:
    state = _momentum_state(nesterov=nesterov)
    assert state.stationary, state.reason
    laws.norm_balance(state).assert_passed()
    laws.ideal_gas(state, corrected=True).assert_passed()


def test_momentum_norm_balance_fails_when_the_loop_doubles_the_weight_decay() -> None:
    """L2 of the same λ added to the loss on top of the optimizer's weight decay."""
    state = _momentum_state(extra_l2=LOOP["weight_decay"])
    assert laws.norm_balance(state).verdict == "failed"


def test_a_momentum_loop_claimed_as_plain_sgd_fails() -> None:
    """recorder.step() told nothing of the optimizer claims β = 0 while the loop runs 0.9."""
    state = _momentum_state(hooks=False)
    assert state.optimizer["momentum"] == 0.0
    assert laws.norm_balance(state).verdict == "failed"
    assert laws.ideal_gas(state, corrected=True).verdict == "failed"


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_recorder_measures_the_velocitys_memory_of_the_gradient(nesterov: bool) -> None:
    """``unit_vel_grad`` is the block mean of ``‖w_k‖²⟨v_k, g_k⟩`` with the claimed velocity
    before step k (computed here beside the loop), and momentum states carry its window mean as
    ``extra["velocity_grad"]``, the memory term of V1's momentum trace. A mean gradient (the
    noise's mean ``e_1``) makes it non-zero."""
    d, every, steps, beta = 30, 10, 400, 0.9
    model = NoisySphere(d, seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=0.01, momentum=beta,
                          nesterov=nesterov)
    rec = Recorder(model, "fixed_lr", every=every)
    rec.attach(opt)
    gen = torch.Generator().manual_seed(4)
    mean = torch.zeros(d, dtype=F64)
    mean[0] = 1.0
    velocity = torch.zeros(d, dtype=F64)
    samples = []
    for k in range(steps):
        opt.zero_grad()
        model(torch.randn(d, generator=gen, dtype=F64) + mean).backward()
        w = model.w.detach().clone()
        g = torch.cat([p.grad.detach() for p in model.parts])  # type: ignore[union-attr]
        samples.append(float(w.square().sum() * (velocity @ g)))
        velocity = beta * velocity + g + 0.01 * w
        opt.step()
        if k % 10 == 0:
            rec.add_noise(_known_noise())
    blocks = np.array(samples).reshape(-1, every).mean(1)
    recorded = rec.sync()["unit_vel_grad"][:, 0]
    assert np.abs(blocks).max() > 0
    np.testing.assert_allclose(recorded, blocks, rtol=1e-9, atol=1e-12 * np.abs(blocks).max())
    state = rec.state(entropy=False)
    window = blocks[state.extra["window_start_iteration"] // every:]
    assert state.extra["velocity_grad"]["value"] == pytest.approx(window.mean(), rel=1e-9)
