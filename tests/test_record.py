"""The measurement layer: Recorder statistics and verdicts, noise(), a user's loop (M = 1)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermocheck import laws
from thermocheck.nets import ScaleInvarianceError
from thermocheck.record import (
    INTERPOLATION_REASON,
    NoiseEstimate,
    Recorder,
    noise,
    noise_from_gradients,
)
from thermocheck.states import SERIES, StateGrid

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]



F64 = torch.float64


def _mlp(seed: int = 0, eps: float = 1e-30) -> nn.Module:
    """A scale-invariant MLP: bias-free linear layers each followed by BatchNorm1d(affine=False),
    a frozen head."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 16, bias=False),
        nn.BatchNorm1d(16, affine=False, eps=eps),
        nn.ReLU(),
        nn.Linear(16, 16, bias=False),
        nn.BatchNorm1d(16, affine=False, eps=eps),
        nn.ReLU(),
        nn.Linear(16, 3),
    ).double()
    model[-1].requires_grad_(False)
    return model


def _data(n: int = 96, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g, dtype=F64)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _orthogonal(W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    return G - (G * W).sum(1, keepdim=True) / W.square().sum(1, keepdim=True) * W


def _noise(sigma2: float = 1.0, grad_sq: float = 0.0, m: int = 1) -> NoiseEstimate:
    one = np.ones(m)
    return NoiseEstimate(sigma2 * one, 0 * one, grad_sq * one, one, one, 4)


def _filled(rec: Recorder, radius: torch.Tensor, loss: torch.Tensor) -> None:
    """Steps with ‖w‖ = radius[k], g ⊥ w with ‖g‖ = 0.1/‖w‖ (unit-radius trace 0.01), loss[k];
    a noise measurement every 10 steps."""
    for k in range(radius.shape[0]):
        W = torch.zeros(rec.M, rec.d, dtype=F64)
        W[:, 0] = radius[k]
        G = torch.zeros(rec.M, rec.d, dtype=F64)
        G[:, 1] = 0.1 / radius[k]
        rec.begin(W, G)
        rec.end(loss=loss[k])
        if k % 10 == 0:
            rec.add_noise(_noise(0.002, 0.001, rec.M))


def _white(n: int, m: int, seed: int) -> torch.Tensor:
    return torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=F64)


# -- per-step quantities ---------------------------------------------------------------------------
def test_norm_balance_is_exact_for_the_claimed_step() -> None:
    """Eq. 111: ‖w_{k+1}‖² = (1 − ηλ)²‖w_k‖² + η²‖g_k‖² for g ⊥ w, per step, fixed LR and ELR; the
    update residual of the claimed step is zero (‖w_{k+1}‖² is read at the next step)."""
    for protocol, hp in (("fixed_lr", {"lr": [0.1, 0.3]}), ("fixed_elr", {"elr": [0.05, 0.2]})):
        rec = Recorder(None, protocol, d=20, device="cpu", wd=[0.1, 0.01], every=2, **hp)
        W = torch.randn(2, 20, dtype=F64)
        G = _orthogonal(W, torch.randn(2, 20, dtype=F64))
        rec.begin(W, G)
        eta = rec.spec.step_size(W.square().sum(1))
        W1 = W - eta[:, None] * (G + rec.spec.wd[:, None] * W)
        rec.end()
        rec.begin(W1, torch.zeros_like(W1))
        rec.end()
        h = rec.sync()
        sq0, sq1 = W.square().sum(1), W1.square().sum(1)
        lhs1 = (1 - rec.spec.step_size(sq1) * rec.spec.wd) ** 2 * sq1
        np.testing.assert_allclose(h["balance_lhs"][0], ((sq1 + lhs1) / 2).numpy(), rtol=1e-13)
        np.testing.assert_allclose(h["update_residual"][0], 0, atol=1e-12)
        np.testing.assert_allclose(
            h["unit_grad_sq"][0], (sq0 * G.square().sum(1) / 2).numpy(), rtol=1e-14
        )


def test_lambda_eff_on_the_sphere() -> None:
    """Eq. 83: λ_eff = (‖w − ηg‖ − ‖w‖)/(η‖w‖)."""
    rec = Recorder(None, "fixed_sphere", d=10, device="cpu", elr=0.1, radius=2.0, every=1)
    W = torch.randn(1, 10, dtype=F64)
    W *= 2 / W.norm()
    G = _orthogonal(W, torch.randn(1, 10, dtype=F64))
    rec.begin(W, G)
    rec.end()
    eta = 0.1 * 4
    want = ((W - eta * G).norm() - 2) / (eta * 2)
    assert math.isclose(rec.sync()["lambda_eff"][0, 0], float(want), rel_tol=1e-12)


def test_the_noise_measurement_is_its_own_module() -> None:
    """``thermocheck.noise`` holds the measurement and imports neither the recorder nor the
    networks; ``thermocheck.record`` re-exports it unchanged."""
    import ast
    import inspect

    from thermocheck import noise as noise_module
    from thermocheck import record

    for name in ("noise", "noise_from_gradients", "NoiseEstimate", "unit_radius"):
        assert getattr(record, name) is getattr(noise_module, name)
    tree = ast.parse(inspect.getsource(noise_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    above = ("thermocheck.record", "thermocheck.nets")
    assert not {m for m in imported if m and m.startswith(above)}


# -- noise -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("centred_at_full", [True, False])
def test_noise_isotropic_gradients(centred_at_full: bool) -> None:
    """Isotropic minibatch noise: σ² and ‖∇L(w̄)‖² recovered with the unit conversion, rank ≈ d."""
    M, d, r, s = 2, 400, 3.0, 0.5
    W = torch.zeros(M, d, dtype=F64)
    W[:, 0] = r
    full = torch.zeros(M, d, dtype=F64)
    full[:, 1] = 0.2
    gen = torch.Generator().manual_seed(0)

    def minibatch(i: int) -> torch.Tensor:
        return full + s * torch.randn(M, d, generator=gen, dtype=F64)

    est = noise_from_gradients(
        minibatch, W, full_grad=full if centred_at_full else None, n=200, rank_samples=50
    )
    want = r * r * s * s * d / (d - 1)
    assert np.all(np.abs(est.sigma2 - want) < 4 * est.sigma2_se)
    # the mean-centred ‖∇L‖² = ‖ḡ‖² − Tr Σ/n has standard error ≈ r² s ‖∇L‖ · 2/√n
    tol = 1e-12 if centred_at_full else 4 * r * r * s * 0.2 * 2 / math.sqrt(200)
    np.testing.assert_allclose(est.grad_sq, r * r * 0.04, atol=tol)
    assert np.all(np.abs(est.eff_rank / d - 1) < 0.2)


def test_noise_low_rank_gradients() -> None:
    W = torch.ones(1, 300, dtype=F64)
    basis = torch.randn(300, 3, dtype=F64)
    est = noise_from_gradients(
        lambda i: (basis @ torch.randn(3, dtype=F64))[None],
        W,
        full_grad=torch.zeros(1, 300, dtype=F64),
        n=100,
        rank_samples=60,
    )
    assert est.eff_rank[0] < 4


def test_noise_of_a_model_vmap_equals_loop_and_leaves_the_model_alone() -> None:
    model = _mlp()
    data = _data()
    model.eval()
    before = [b.clone() for b in model.buffers()]
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    ests = {
        method: noise(model, data, batch_size=16, n=12, method=method, vmap_chunk=5,
                      generator=torch.Generator().manual_seed(3))
        for method in ("vmap", "loop")
    }
    assert torch.equal(torch.rand(3), expected_draw), "noise() must not consume the global RNG"
    for field in ("sigma2", "sigma2_se", "grad_sq", "rank_num", "rank_den"):
        np.testing.assert_allclose(
            getattr(ests["vmap"], field), getattr(ests["loop"], field), rtol=1e-10
        )
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
    cheap = noise(model, data, batch_size=16, n=12, full_batch=False)
    assert cheap.sigma2[0] > 0


# -- states: statistics and verdicts ---------------------------------------------------------------
def test_states_stationary_with_batch_means_errors() -> None:
    rec = Recorder(None, "fixed_lr", d=5, device="cpu", lr=[0.1, 0.2], wd=0.01, every=4)
    n = 800
    _filled(rec, 2.0 + 0.01 * _white(n, 2, 1), 0.5 + 0.01 * _white(n, 2, 2))
    states = rec.states(entropy=False)
    assert [s.stationary for s in states] == [True, True], [s.reason for s in states]
    grid = rec.grid(entropy=False)  # the same states as one StateGrid
    assert isinstance(grid, StateGrid)
    assert [json.dumps(s.to_dict()) for s in grid] == [json.dumps(s.to_dict()) for s in states]
    s = states[0]
    assert abs(s.mean_radius.value - 2) < 0.002 and 0 < s.mean_radius.stderr < 0.002
    assert 10 <= s.mean_radius.n <= 30  # batch means: the number of batches
    # trace per step 0.01, E‖∇L(w̄)‖² 0.001 from the noise measurements: σ² = 0.009/(d − 1)
    assert math.isclose(s.grad_sq.value, 0.001, rel_tol=1e-12)
    assert math.isclose(s.sigma2.value, 0.009 / 4, rel_tol=1e-9)
    assert s.lr == 0.1 and s.wd == 0.01 and s.elr is None
    assert s.extra["window_blocks"] >= 100 and s.extra["noise_measurements"] >= 10


def test_drifting_radius_is_not_stationary() -> None:
    rec = Recorder(None, "fixed_lr", d=5, device="cpu", lr=0.1, wd=0.01, every=4)
    n = 800
    _filled(rec, torch.linspace(1, 3, n)[:, None] + 0.01 * _white(n, 1, 3),
            0.5 + 0.01 * _white(n, 1, 4))
    s = rec.state(entropy=False)
    assert not s.stationary and "radius series" in s.reason, s.reason
    assert s.stationary_series == {"radius": False, "loss": True, "noise": True,
                                   "directions": True}


def test_too_short_or_unmeasured_noise_is_a_verdict() -> None:
    rec = Recorder(None, "fixed_lr", d=5, device="cpu", lr=0.1, wd=0.01, every=4)
    _filled(rec, 2.0 + 0.01 * _white(60, 1, 5), 0.5 + 0.01 * _white(60, 1, 6))
    s = rec.state(entropy=False)
    assert not s.stationary and s.reason.startswith("too short")
    rec = Recorder(None, "fixed_lr", d=5, device="cpu", lr=0.1, wd=0.01, every=4)
    for k in range(400):
        W = torch.zeros(1, 5, dtype=F64)
        W[0, 0] = 2.0 + 0.01 * math.sin(k)
        rec.begin(W, torch.full((1, 5), 0.1, dtype=F64))
        rec.end()
    s = rec.state(entropy=False)
    assert not s.stationary and "no gradient-noise measurement" in s.reason and s.loss is None


def test_interpolation_is_a_verdict_not_a_crash() -> None:
    rec = Recorder(None, "fixed_elr", d=5, device="cpu", elr=0.1, wd=0.01, every=4)
    n = 800
    _filled(rec, 2.0 + 0.01 * _white(n, 1, 5), 1e-5 * torch.ones(n, 1, dtype=F64))
    s = rec.state(entropy=False)
    assert not s.stationary and s.reason == INTERPOLATION_REASON
    assert s.not_stationary_in(SERIES) == ("noise", "directions")


def test_divergence_is_a_verdict_not_a_crash() -> None:
    rec = Recorder(None, "fixed_elr", d=5, device="cpu", elr=0.1, wd=0.01, every=4)
    radius = 2.0 + 0.01 * _white(800, 1, 6)
    radius[600:] = float("nan")
    _filled(rec, radius, 0.5 + 0.01 * _white(800, 1, 7))
    s = rec.state(entropy=False)
    assert not s.stationary and s.reason.startswith("diverged") and s.diverged


def _isotropic_walk(rec: Recorder, loss: torch.Tensor, *, lr: float, wd: float, seed: int) -> None:
    """Fixed LR (Eq. 15) on a loss whose minibatch gradient is pure isotropic noise of σ² = 1
    (Eq. 24 with ∇L = 0): ``w ← w − η(g + λw)``, ``‖w‖ g = P_w ξ``, started at the stationary radius
    of Eq. 19; ``loss[k]`` is the loss fed at step k, and a noise measurement (σ² = 1, ∇L = 0)
    comes every 10 steps."""
    gen = torch.Generator().manual_seed(seed)
    d = rec.d
    W = torch.randn(1, d, generator=gen, dtype=F64)
    W *= (lr * (d - 1) / (2 * wd)) ** 0.25 / W.norm()
    for k in range(loss.shape[0]):
        xi = torch.randn(1, d, generator=gen, dtype=F64)
        sq = W.square().sum()
        G = (xi - (xi * W).sum() / sq * W) / sq.sqrt()
        rec.begin(W, G)
        W = W - lr * (G + wd * W)
        rec.end(loss=loss[k])
        if k % 10 == 0:
            rec.add_noise(_noise(1.0, 0.0))


def test_a_drifting_loss_leaves_v1_and_the_norm_balance_to_decide() -> None:
    """Stationarity per series: the loss (and with it the directions) still drifts, the radius and
    the noise are stationary, so V1 and the norm balance, which need only those, decide."""
    rec = Recorder(None, "fixed_lr", d=20, device="cpu", lr=0.05, wd=0.05, every=25)
    steps = 8000
    _isotropic_walk(rec, torch.linspace(1.0, 0.5, steps) + 0.01 * _white(steps, 1, 8)[:, 0],
                    lr=0.05, wd=0.05, seed=9)
    s = rec.state(entropy=False)
    assert s.stationary_series == {"radius": True, "loss": False, "noise": True,
                                   "directions": False}, s.reason
    assert not s.stationary and "the loss series" in s.reason, s.reason
    assert "not stationary" not in s.reason  # the laws add it once when they name the state
    for result in (laws.ideal_gas(s, corrected=True), laws.norm_balance(s)):
        assert result.verdict == "passed", result.summary()


# -- a user's loop ---------------------------------------------------------------------------------
def _train(
    rec: Recorder, model: nn.Module, opt: torch.optim.Optimizer, steps: int, *, hooks: bool
) -> None:
    x, y = _data()
    g = torch.Generator().manual_seed(5)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (16,), generator=g)
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        if hooks:
            rec.log_loss(loss)
            opt.step()
        else:
            opt.step()
            rec.step(loss)


def _user(momentum: float = 0.0, **kw: object) -> tuple[Recorder, nn.Module, torch.optim.Optimizer]:
    model = _mlp()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.2, weight_decay=0.05, momentum=momentum)
    rec = Recorder(model, "fixed_lr", lr=0.2, wd=0.05, every=5, **kw)  # type: ignore[arg-type]
    return rec, model, opt


def test_user_loop_step_and_hooks_record_the_same() -> None:
    """recorder.step() after optimizer.step() and recorder.attach(optimizer) see the same steps:
    the update is the claimed one (residual ~ round-off) and the gradient is radial-free (P2)."""
    a, model_a, opt_a = _user()
    _train(a, model_a, opt_a, 40, hooks=False)
    b, model_b, opt_b = _user()
    handles = b.attach(opt_b)
    _train(b, model_b, opt_b, 40, hooks=True)
    for h in handles:
        h.remove()
    ha, hb = a.sync(), b.sync()
    assert ha["loss"].shape == (8, 1)
    for q in ha:
        np.testing.assert_allclose(ha[q], hb[q], rtol=1e-12, atol=1e-15, err_msg=q)
    assert np.abs(ha["update_residual"]).max() < 1e-12
    assert np.abs(ha["radial_cos"]).max() < 1e-8


def test_user_loop_on_the_fixed_sphere() -> None:
    """Projected SGD written by the user: the projection counts as part of the update."""
    model = _mlp()
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        scale = 2.0 / torch.cat([p.reshape(-1) for p in params]).norm()
        for p in params:
            p.mul_(scale)
    opt = torch.optim.SGD(params, lr=0.1 * 4)  # η = η_eff r²
    rec = Recorder(model, "fixed_sphere", elr=0.1, radius=2.0, every=5)
    x, y = _data()
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[:16]), y[:16])
        loss.backward()
        opt.step()
        with torch.no_grad():
            norm = torch.cat([p.reshape(-1) for p in params]).norm()
            for p in params:
                p.mul_(2.0 / norm)
        rec.step(loss)
    h = rec.sync()
    assert np.abs(h["update_residual"]).max() < 1e-12
    assert np.all(h["lambda_eff"] > 0)


def test_an_optimizer_other_than_claimed_shows_in_the_update_residual() -> None:
    rec, model, opt = _user(momentum=0.9)
    _train(rec, model, opt, 40, hooks=False)
    assert np.abs(rec.sync()["update_residual"][2:]).max() > 1e-3


def test_attach_refuses_a_closure() -> None:
    rec, model, opt = _user()
    rec.attach(opt)
    x, y = _data()
    with pytest.raises(ValueError, match="closure"):
        opt.step(lambda: F.cross_entropy(model(x), y))


def _ln_mlp(*, affine: bool = False, head: bool = False, last_norm: bool = True) -> nn.Module:
    """A float32 LayerNorm MLP 8 → 32 → 32 → 3 with LayerNorm's default ε = 1e-5, its trainable
    weights rescaled to ‖w‖ = 0.25, where ε changes the loss under scaling by more than the
    Recorder's default ``invariance_rtol``. Options break the invariance: an affine LayerNorm, a
    trainable head, no LayerNorm after the second layer."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 32, bias=False), nn.LayerNorm(32, elementwise_affine=affine), nn.ReLU(),
        nn.Linear(32, 32, bias=False),
        nn.LayerNorm(32, elementwise_affine=affine) if last_norm else nn.Identity(), nn.ReLU(),
        nn.Linear(32, 3),
    )
    model[-1].requires_grad_(head)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        norm = torch.cat([p.reshape(-1) for p in params]).norm()
        for p in params:
            p.mul_(0.25 / norm)
    return model


def test_a_layernorm_mlp_with_plain_sgd_is_accepted_at_default_settings() -> None:
    """ε breaks the invariance at ‖w‖ = 0.25 beyond the default tolerance, yet the model is
    accepted: at 100 × the weights ε's effect is 1e4 times smaller, and nothing structural is
    left."""
    model = _ln_mlp()
    x, y = _data()
    data = (x.float(), y)
    rec = Recorder(model, "fixed_lr", lr=0.1, wd=0.05, data=data, batch_size=16, every=5)
    assert rec.invariance is not None
    assert rec.invariance["loss_rel_change"] > 1e-3 > 1e2 * rec.invariance["structural_change"]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.05)
    for _ in range(10):
        opt.zero_grad()
        loss = F.cross_entropy(model(data[0][:16]), y[:16])
        loss.backward()
        opt.step()
        rec.step(loss)
    assert np.abs(rec.sync()["update_residual"]).max() < 1e-5  # plain SGD is the claimed step


@pytest.mark.parametrize(("breaks", "named"), [
    ({"affine": True}, ["1.weight", "1.bias", "4.weight", "4.bias"]),
    ({"head": True}, ["6.weight", "6.bias"]),
    ({"last_norm": False}, ["3.weight"]),
])
def test_refuses_structural_breaks_naming_every_parameter_and_the_option(
    breaks: dict[str, bool], named: list[str]
) -> None:
    """An affine normalisation, a trainable head or a layer without normalisation is refused at
    default settings; the message names every parameter at fault (and no other) and the option."""
    x, y = _data()
    with pytest.raises(ScaleInvarianceError, match="invariance_rtol=") as err:
        Recorder(_ln_mlp(**breaks), "fixed_lr", lr=0.1, wd=0.05, data=(x.float(), y),
                 batch_size=16)
    culprits = str(err.value).split("Parameters that break the invariance: ")[1]
    listed = [item.split(" (")[0] for item in culprits.split("; ")[: len(named) + 1]]
    assert listed[: len(named)] == named and not listed[len(named)].endswith("weight"), culprits


class _TwoBranches(nn.Module):
    """Two linear branches (with biases) summed before one normalisation: invariant only jointly."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 32), nn.Linear(8, 32)
        self.norm = nn.BatchNorm1d(32, affine=False)
        self.head = nn.Linear(32, 3)
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.a(x) + self.b(x))))


def test_a_model_invariant_only_jointly_is_accepted() -> None:
    """The laws need L(αw) = L(w) for the whole w: biases before a normalisation and branches
    summed before one are scale-invariant jointly, though no tensor is invariant alone."""
    x, y = _data()
    recorder = Recorder(_TwoBranches(), "fixed_lr", lr=0.1, wd=0.05, data=(x.float(), y),
                        batch_size=16)
    assert recorder is not None


def test_the_invariance_check_leaves_the_model_as_it_was() -> None:
    model = _ln_mlp(affine=True)
    model.eval()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    x, y = _data()
    torch.manual_seed(3)
    expected_draw = torch.rand(3)
    torch.manual_seed(3)
    with pytest.raises(ScaleInvarianceError):
        Recorder(model, "fixed_lr", lr=0.1, wd=0.05, data=(x.float(), y), batch_size=16)
    assert torch.equal(torch.rand(3), expected_draw), "the check must not consume the global RNG"
    assert not model.training
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())


def test_user_states_with_noise_entropy_and_a_grid_from_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Separate runs (one per grid point) combine into a grid that round-trips through JSON."""
    states = []
    for lr, storage in ((0.1, "cpu"), (0.2, "disk")):
        model = _mlp()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr,
                              weight_decay=0.05)
        rec = Recorder(model, "fixed_lr", lr=lr, wd=0.05, every=5, data=_data(), batch_size=16,
                       noise_every=10, queue_size=30, queue_every=5, queue_storage=storage,
                       queue_path=tmp_path / f"queue{lr}.f32")
        _train(rec, model, opt, 400, hooks=False)
        s = rec.state()
        assert s.sphere_entropy is not None and s.sphere_entropy.stderr > 0
        assert s.grad_sq is not None and s.extra["noise_measurements"] >= 10
        states.append(s)
    assert (tmp_path / "queue0.2.f32").stat().st_size == 30 * sum(
        p.numel() for p in _mlp().parameters() if p.requires_grad
    ) * 4
    grid = StateGrid.combine(*states)
    path = grid.save(tmp_path / "grid.json")
    back = StateGrid.load(path)
    assert [s.to_dict() for s in back] == [s.to_dict() for s in grid]


def test_no_host_sync_between_log_points(
    spy_host_syncs: Callable[[], list[str]],
) -> None:
    """A user's loop with the recorder (step() and hooks) never synchronises with the host."""
    calls = spy_host_syncs()
    for hooks in (False, True):
        rec, model, opt = _user(queue_size=4, queue_every=3)
        if hooks:
            rec.attach(opt)
        _train(rec, model, opt, 30, hooks=hooks)
    assert calls == [], f"host syncs between log points: {sorted(set(calls))}"
    rec.sync()
    assert calls.count("cpu") == 1


def test_lightning_callback_records_every_step() -> None:
    """thermocheck.extra.lightning: Lightning's closure-driven steps recorded as a plain loop's."""
    lightning = pytest.importorskip(
        "lightning.pytorch", reason="the optional extra: pip install 'thermocheck[lightning]'"
    )
    from thermocheck.extra.lightning import RecorderCallback

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.optim.SGD(params, lr=0.2, weight_decay=0.05)

    module = Module()
    rec = Recorder(module, "fixed_lr", lr=0.2, wd=0.05, every=5)
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16,
                                         shuffle=True)
    trainer = lightning.Trainer(
        max_steps=20, callbacks=[RecorderCallback(rec)], logger=False, accelerator="cpu",
        devices=1, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    h = rec.sync()
    assert rec.step_count == 20 and not rec.step_open
    assert np.isfinite(h["loss"]).all() and np.abs(h["update_residual"]).max() < 1e-12
    assert np.abs(h["radial_cos"]).max() < 1e-8
