"""Networks as a sweep substrate: cached per point, independent of the shard, and the CLI."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cifar_files import write_cifar

from thermocheck import cli, laws, theory
from thermocheck.deviations import known_deviation
from thermocheck.nets import GridConfig, Trainer, synthetic
from thermocheck.nets.data import DATASET_SHAPES
from thermocheck.nets.substrate import sweep_spec, trainable_dimension
from thermocheck.report import exit_code
from thermocheck.states import State, StateGrid
from thermocheck.sweep import SweepResult, run_sweeps, split
from thermocheck.sweep.shards import _workdir

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]


def _config(**kw: object) -> GridConfig:
    base = dict(protocol="fixed_lr", x=(0.3, 1.0), y=(0.01, 0.1), width=2, dataset="synthetic",
                batch_size=8, iters=60, every=5, queue_size=10, queue_every=5, noise_every=10,
                dtype="float64")
    return GridConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("model", "dataset"), [("convnet", "digits"), ("convnet", "cifar100"),
                                                ("resnet18", "cifar10")])
def test_dimension_is_known_without_loading_the_data(model: str, dataset: str) -> None:
    channels, classes = DATASET_SHAPES[dataset]
    config = _config(model=model, dataset=dataset)
    stand_in = synthetic(2 * classes, num_classes=classes, channels=channels)
    assert trainable_dimension(config) == Trainer(config, data=stand_in).P


def test_the_key_ignores_what_does_not_change_the_numbers() -> None:
    a = sweep_spec(_config())
    b = sweep_spec(_config(threads=2, log_every=7, progress=True, data_dir="/elsewhere"))
    assert a.config(a.points()[0]) == b.config(b.points()[0])
    assert b.settings == {"threads": 2, "log_every": 7, "data_dir": "/elsewhere"}
    c = sweep_spec(_config(batch_size=16))
    assert c.config(c.points()[0]) != a.config(a.points()[0])


def test_a_point_does_not_depend_on_its_shard(tmp_path: Path) -> None:
    spec = sweep_spec(_config())
    whole, = run_sweeps([spec], cache=tmp_path / "one", progress=False)
    halves, = run_sweeps([spec], cache=tmp_path / "two", shard_size=2, progress=False)
    assert len(split(spec, 2)) == 2 and whole.complete and halves.complete
    assert whole.grid is not None and halves.grid is not None
    for s, t in zip(whole.grid, halves.grid, strict=True):
        assert s.hyperparameters == t.hyperparameters
        assert s.sq_norm is not None and t.sq_norm is not None
        assert s.sq_norm.value == pytest.approx(t.sq_norm.value, rel=1e-9)


def test_trained_states_equal_the_trainer_run_directly(tmp_path: Path) -> None:
    config = _config()
    done, = run_sweeps([sweep_spec(config)], cache=tmp_path, progress=False)
    trainer = Trainer(config)
    trainer.run()
    direct = trainer.grid()
    assert done.grid is not None
    for s, t in zip(done.grid, direct, strict=True):
        assert s.sq_norm is not None and t.sq_norm is not None
        assert s.sq_norm.value == t.sq_norm.value
        assert s.d == t.d == sweep_spec(config).d


def test_verify_net_writes_a_report_and_reruns_from_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--substrate", "net", "--dataset", "synthetic", "--iters", "240",
            "--protocol", "fixed_lr", "--cache", str(tmp_path / "cache")]
    first = cli.main([*argv, "--out", str(tmp_path / "a")])
    assert "9 to measure" in capsys.readouterr().err
    second = cli.main([*argv, "--out", str(tmp_path / "b")])
    assert "9 cached" in capsys.readouterr().err and first == second
    reports = [json.loads((tmp_path / f / "report.json").read_text()) for f in "ab"]
    assert reports[0]["results"] == reports[1]["results"]
    meta = reports[0]["meta"]
    assert meta["extra"]["substrate"] == "net" and meta["extra"]["sweep"][0]["finished"] == 9
    assert meta["command"].startswith("thermocheck verify --substrate net")


def test_a_shard_resumes_from_its_checkpoint_and_then_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(iters=80, log_every=10)
    spec = sweep_spec(config)
    workdir = _workdir(str(tmp_path), spec, spec.points())
    killed = Trainer(replace(config, checkpoint=str(workdir / "trainer.pt")))
    killed.run(40)  # a job stopped half-way, after its last checkpoint
    killed.save(workdir / "trainer.pt")
    steps: list[int] = []
    step = Trainer.train_step

    def counted(self: Trainer) -> None:
        steps.append(1)
        step(self)

    monkeypatch.setattr(Trainer, "train_step", counted)
    resumed, = run_sweeps([spec], cache=tmp_path, progress=False)
    assert len(steps) == 40 and not workdir.exists()
    uninterrupted, = run_sweeps([spec], cache=tmp_path / "fresh", progress=False)
    assert len(steps) == 40 + 80
    killed.save(workdir / "trainer.pt")  # a stale checkpoint: a forced run starts afresh
    run_sweeps([spec], cache=tmp_path, progress=False, force=True)
    assert len(steps) == 40 + 80 + 80 and not workdir.exists()
    assert resumed.grid is not None and uninterrupted.grid is not None
    for s, t in zip(resumed.grid, uninterrupted.grid, strict=True):
        assert s.sq_norm is not None and t.sq_norm is not None
        assert s.sq_norm.value == t.sq_norm.value


def test_verify_net_without_cifar_says_where_the_files_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THERMOCHECK_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", "--substrate", "net", "--preset", "paper", "--device", "cpu",
                  "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "--data-dir" in err
    assert not (tmp_path / "cache").exists()  # nothing started


def test_verify_net_reads_cifar_from_data_dir_and_keeps_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(tmp_path / "data", "cifar10", n=8)
    seen: list[int | None] = []
    run = Trainer.run

    def spied(self: Trainer, *args: Any, **kwargs: Any) -> None:
        seen.append(self.config.threads)
        run(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "run", spied)
    code = cli.main(["verify", "--substrate", "net", "--dataset", "cifar10", "--data-dir",
                     str(tmp_path / "data"), "--iters", "240", "--protocol", "fixed_lr", "-q",
                     "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert code in (0, 1, 3) and report["states"]["fixed_lr"]["states"][0]["extra"]["dataset"] == (
        "cifar10")
    assert seen == [1]  # the cpu-tiny preset's one thread reaches the shard
    assert "THERMOCHECK_DATA_DIR" not in os.environ


# -- the SDE form of V1 on networks: a known deviation, measured -------------------------------
def appendix_g_grid(protocol: str, d: int = 50) -> StateGrid:
    """Noise-free network states that obey the discretisation-corrected state equation exactly
    (Eq. 119–121), with E‖∇L(w̄)‖²/Tr Σ_w̄ from 0.2 to 0.8 over the grid."""
    x_name, y_name = theory.AXES[protocol]
    xs = {"fixed_lr": (0.05, 0.1, 0.2), "fixed_elr": (0.005, 0.01, 0.02),
          "fixed_sphere": (0.005, 0.01, 0.02)}[protocol]
    ys = (0.5, 1.0, 2.0) if protocol == "fixed_sphere" else (0.005, 0.01, 0.02)
    states = []
    for n, (x, y) in enumerate((x, y) for x in xs for y in ys):
        ratio = 0.2 + 0.075 * n
        hp = {x_name: x, y_name: y}
        sigma2_eff = 1.0 + ratio  # Tr Σ_w̄ + E‖∇L(w̄)‖² = σ²(d − 1)(1 + ratio), σ² = 1
        if protocol == "fixed_sphere":
            measured = {"lambda_eff": (float(theory.effective_wd(d, sigma2_eff, **hp)), 1e-9, 50)}
        else:
            r = float(theory.stationary_radius(protocol, d, sigma2_eff, **hp))
            measured = {"sq_norm": (r * r, 1e-9, 50)}
        states.append(State(protocol=protocol, d=d, sigma2=(1.0, 1e-9, 50), substrate="net",  # type: ignore[arg-type]
                            grad_sq=(ratio * (d - 1), 1e-9, 50), **hp, **measured))  # type: ignore[arg-type]
    return StateGrid(states)


@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr", "fixed_sphere"])
def test_sde_form_gap_is_measured_and_not_counted(protocol: str) -> None:
    grid = appendix_g_grid(protocol)
    corrected = laws.ideal_gas(grid, corrected=True)
    sde = laws.ideal_gas(grid, corrected=False)
    assert corrected.verdict == "passed" and sde.verdict == "failed"
    power = 0.5 if protocol == "fixed_lr" else 1.0
    for point, state in zip(sde.details, grid, strict=True):
        assert state.grad_sq is not None
        ratio = state.grad_sq.value / (state.d - 1)
        assert point["grad_ratio"] == pytest.approx(ratio, rel=1e-12)
        # the measured gap is the one Appendix G's term accounts for
        assert point["predicted_gap"] == pytest.approx((1 + ratio) ** power - 1, rel=1e-12)
        assert point["relative_residual"] == pytest.approx(point["predicted_gap"], rel=1e-9)
    assert any(n.startswith("SDE-form gap:") for n in sde.notes)
    assert known_deviation(sde) is not None and known_deviation(corrected) is None
    assert exit_code([sde, corrected]) == 0


def test_an_unfinished_sde_form_is_still_a_known_deviation() -> None:
    """A grid with no finished point gives inconclusive results that keep their options, so the
    SDE form stays out of the count and its row in the table."""
    spec = sweep_spec(_config())
    unfinished = SweepResult(spec, None, tuple(spec.points()))
    sde = unfinished.check(laws.ideal_gas, corrected=False)
    corrected = unfinished.check(laws.ideal_gas, corrected=True)
    assert sde.verdict == corrected.verdict == "inconclusive"
    assert known_deviation(sde) is not None and known_deviation(corrected) is None


@pytest.mark.parametrize(("case", "message"), [
    ("out is a file", "out="),
    ("cache under a file", "cache="),
    ("slurm without submitit", "--executor slurm needs submitit"),
])
def test_verify_net_usage_errors_exit_2_before_training(
    case: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trained: list[int] = []
    monkeypatch.setattr(Trainer, "run", lambda self, *a, **k: trained.append(1))
    (tmp_path / "file").write_text("")
    argv = ["verify", "--substrate", "net", "--dataset", "synthetic", "--iters", "240",
            "--protocol", "fixed_lr", "--out", str(tmp_path / "r"),
            "--cache", str(tmp_path / "cache")]
    if case == "out is a file":
        argv += ["--out", str(tmp_path / "file")]
    elif case == "cache under a file":
        argv += ["--cache", str(tmp_path / "file" / "cache")]
    else:
        monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
        argv += ["--executor", "slurm"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not trained and not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()
