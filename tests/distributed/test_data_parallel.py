"""Data-parallel training: 2 gloo ranks equal one process, gradient accumulation, exact
resume (dropout, EMA, dataset position), sharded datasets, mixed precision, bad settings,
callbacks on rank 0 only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sitransport as st
from sitransport._io import load_checkpoint
from sitransport.callbacks import Callback
from sitransport.couplings import ExactOT
from sitransport.distributed import ShardedDataset, rank_and_world
from sitransport.ends.densities import StandardNormal
from sitransport.fitting import DatasetDraw
from sitransport.flow import Normalization
from sitransport.interpolants import Linear
from sitransport.nn import UNetVelocity, unet_config
from sitransport.train import TrainSettings, train

SHAPE = (1, 4, 4)


def _images(n: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, *SHAPE), generator=gen, dtype=torch.float64)


def _draw(data: torch.Tensor):
    def draw(n: int, g: torch.Generator):
        idx = torch.randint(0, data.shape[0], (n,), generator=g)
        return torch.randn((n, *SHAPE), generator=g, dtype=torch.float64), data[idx]

    return draw


def _net(dropout: float = 0.0) -> UNetVelocity:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cfg = unet_config("tiny", 1, 4, base_channels=8, norm_groups=4, dropout=dropout)
        return UNetVelocity(**dict(cfg, attention_resolutions=[2]))


def _settings(**kwargs) -> TrainSettings:
    base = dict(steps=4, batch_size=16, lr=1e-2, warmup=1, progress=False, eval_every=2)
    return TrainSettings(**dict(base, **kwargs))


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _run(**kwargs) -> torch.Tensor:
    """A short float64 run on the global batch with exact minibatch OT pairs."""
    result = train(
        _net(),
        Linear(),
        _draw(_images()),
        settings=_settings(**kwargs),
        coupling=ExactOT(processes=0),
        dtype=torch.float64,
    )
    return torch.cat([_params(result.model), torch.as_tensor(result.history["loss"].values)])


class Calls(Callback):
    """The hooks called, by name."""

    def __init__(self):
        self.calls: list[str] = []

    def on_step(self, step, **numbers):
        self.calls.append("step")

    def on_eval(self, step, **numbers):
        self.calls.append("eval")

    def on_checkpoint(self, step, path):
        self.calls.append("checkpoint")

    def on_end(self, result):
        self.calls.append("end")


def _worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        assert rank_and_world() == (rank, world)
        result = {"ddp": _run()}
        # only rank 0 writes checkpoints (each rank is given its own path here to tell)
        ckpt = Path(f"{out}.ckpt.{rank}")
        calls = Calls()  # and only rank 0 calls the callbacks
        train(_net(), Linear(), _draw(_images()), checkpoint=ckpt,
              settings=_settings(checkpoint_every=2, callbacks=[calls]))  # fmt: skip
        result["wrote"] = ckpt.exists()
        result["calls"] = len(calls.calls)
        # a sharded dataset: each rank reads half, every rank sees the same global batches
        data = torch.arange(12, dtype=torch.uint8).reshape(12, 1, 1, 1)
        source = ShardedDataset(torch.utils.data.TensorDataset(data), levels=16, seed=3)
        gen = torch.Generator().manual_seed(0)
        epoch = torch.cat([source(4, gen) for _ in range(3)])  # 3 batches of 4 = 12 items
        result["epoch"] = torch.floor(epoch * 16).flatten()
        result["state"] = torch.tensor(list(source.state_dict().values()))
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """DDP on 2 CPU processes, exact OT on the global batch, EMA: the same parameters and
    losses as one process on the same global batch."""
    init = f"file://{tmp_path / 'store'}"
    # fork: the children share the imported modules (spawn would re-import torch in each)
    mp.start_processes(
        _worker, args=(2, init, str(tmp_path / "out")), nprocs=2, join=True, start_method="fork"
    )
    single = _run()
    r0, r1 = (torch.load(tmp_path / f"out.{r}", weights_only=True) for r in (0, 1))
    torch.testing.assert_close(r0["ddp"], r1["ddp"], rtol=0, atol=0)  # ranks agree exactly
    torch.testing.assert_close(r0["ddp"], single, rtol=1e-7, atol=1e-9)
    # sharded dataset: identical global batches on both ranks, an epoch covers each item once
    torch.testing.assert_close(r0["epoch"], r1["epoch"])
    assert sorted(r0["epoch"].tolist()) == list(range(12))
    assert r0["state"].tolist() == [1, 0]  # next epoch, first batch
    assert r0["wrote"] and not r1["wrote"]
    # 4 steps, evaluations at 2 and 4, checkpoints at 2 and 4, the end: on rank 0 only
    assert (r0["calls"], r1["calls"]) == (4 + 2 + 2 + 1, 0)


def test_gradient_accumulation_equals_one_big_batch():
    one = _run(accumulate=1)
    four = _run(accumulate=4)
    torch.testing.assert_close(four, one, rtol=1e-7, atol=1e-9)
    assert not torch.equal(_run(batch_size=4), one)  # a smaller batch is another run


def test_kill_and_resume_matches_the_uninterrupted_run(tmp_path, killed_after_checkpoint):
    """U-Net with dropout, EMA, 2 micro-batches, data from a ShardedDataset: a run killed
    right after its step-3 checkpoint and resumed equals the uninterrupted run, bit for bit."""
    pixels = torch.randint(0, 256, (40, *SHAPE), generator=torch.Generator().manual_seed(1))
    dataset = torch.utils.data.TensorDataset(pixels.to(torch.uint8))

    def run(**kwargs):
        draw = DatasetDraw(
            StandardNormal(SHAPE),
            ShardedDataset(dataset, seed=0),
            Normalization.identity(SHAPE),
        )
        result = train(
            _net(dropout=0.3),
            Linear(),
            draw,
            settings=_settings(steps=8, batch_size=8, accumulate=2, checkpoint_every=3, ema=0.9),
            checkpoint=tmp_path / "ckpt.pt",
            **kwargs,
        )
        return _params(result.model), result.history["loss"].values

    full, full_loss = run()
    (tmp_path / "ckpt.pt").unlink()
    with killed_after_checkpoint():
        run()
    state = load_checkpoint(tmp_path / "ckpt.pt", "cpu")
    assert state["step"] == 3 and state["draw"]["position"] > 0
    resumed, resumed_loss = run(resume=True)
    torch.testing.assert_close(resumed, full, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed_loss, full_loss)
    # dropout masks come from the step, not from whatever the global RNG holds
    torch.manual_seed(123)  # the global RNG must not matter (reseeded per step inside)
    again, _ = run()
    torch.testing.assert_close(again, full, rtol=0, atol=0)


def test_bf16_autocast_trains():
    """mixed_precision="bf16" runs the network's training forwards under autocast: their
    convolutions compute in bfloat16 (seen by forward hooks) while the weights stay float32
    and the losses finite."""
    net = _net()
    seen = []  # (training forward?, output dtype) of every convolution

    def hook(module, args, out):
        seen.append((torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), out.dtype))

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(hook)
    result = train(
        net, Linear(), _draw(_images()), settings=_settings(steps=3, mixed_precision="bf16")
    )
    assert np.isfinite(result.history["loss"].values).all()
    assert next(result.model.parameters()).dtype == torch.float32
    training = [(autocast, dtype) for grad, autocast, dtype in seen if grad]
    assert training and set(training) == {(True, torch.bfloat16)}


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"accumulate": 3}, ValueError, r"batch_size=16 must split into world size x accumulate"),
        ({"accumulate": 0}, ValueError, "accumulate must be an integer >= 1"),
        ({"mixed_precision": "fp8"}, ValueError, "unknown mixed_precision 'fp8'"),
    ],
)
def test_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        train(_net(), Linear(), _draw(_images()), settings=_settings(**kwargs))


def test_path_optimisation_refuses_accumulation():
    from sitransport.interpolants import get_interpolant
    from sitransport.paths import PathSettings

    with pytest.raises(ValueError, match="path optimisation"):
        train(
            _net(),
            get_interpolant("fourier"),
            _draw(_images()),
            settings=_settings(accumulate=2),
            path=PathSettings(),
        )


def test_sharded_dataset_errors():
    with pytest.raises(TypeError, match="map-style torch Dataset"):
        ShardedDataset(iter([1, 2]))
    small = torch.utils.data.TensorDataset(torch.zeros(3, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="too few for a batch of 4"):
        ShardedDataset(small)(4, torch.Generator())
    bad = torch.utils.data.TensorDataset(torch.full((4, 1, 2, 2), 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="dataset images must have values in"):
        ShardedDataset(bad, levels=17)(2, torch.Generator())


def test_image_example_runs_under_torchrun(tmp_path):
    """examples/images/train_images.py --tiny on 2 gloo ranks (torchrun): a folder of PNGs
    streamed through DistributedSampler shards, checkpoint, flow, samples grid, bits/dim."""
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "flowers"
    folder.mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    script = Path(__file__).parents[2] / "examples" / "images" / "train_images.py"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), "--config", "flowers128", "--tiny", "--data-root", str(folder),
           "--out", str(out)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and np.isfinite(report["bpd"])
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "flow.sit", "samples.png"}
    assert load_checkpoint(out / "checkpoint.pt", "cpu")["step"] == 4
    flow = st.load(out / "flow.sit")
    assert flow.shape == (3, 16, 16)


def _conditional_fit(kind: str):
    """A tiny float64 conditional fit (labels or features, within-condition exact OT pairs,
    condition dropout): its weights, losses and validation losses."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 240)
    x1 = rng.normal(size=(240, 2)) + labels[:, None] * 2.0
    condition = labels if kind == "labels" else labels[:, None] + rng.normal(size=(240, 1))
    settings = TrainSettings(steps=4, batch_size=16, lr=1e-2, warmup=1, progress=False,
                             eval_every=2, condition_dropout=0.25)  # fmt: skip
    flow = st.fit("gaussian", x1, condition=condition, coupling=ExactOT(processes=0),
                  dtype=torch.float64, network=st.MLPSpec(width=16, depth=2), training=settings,
                  seed=1)  # fmt: skip
    history = flow.history
    return torch.cat(
        [
            _params(flow.network),
            torch.as_tensor(history["loss"].values),
            torch.as_tensor(history["val_loss"].values),
        ]
    )


def _conditional_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        result = {kind: _conditional_fit(kind) for kind in ("labels", "features")}
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_conditional_fit_on_two_gloo_ranks_equals_one_process(tmp_path):
    """fit(condition=) under DDP (2 CPU processes, gloo): ranks agree exactly, and equal one
    process on the same global batch (conditions drawn, paired within conditions and dropped
    the same way on every rank)."""
    init = f"file://{tmp_path / 'store'}"
    mp.start_processes(_conditional_worker, args=(2, init, str(tmp_path / "out")), nprocs=2,
                       join=True, start_method="fork")  # fmt: skip
    r0, r1 = (torch.load(tmp_path / f"out.{r}", weights_only=True) for r in (0, 1))
    for kind in ("labels", "features"):
        torch.testing.assert_close(r0[kind], r1[kind], rtol=0, atol=0)
        torch.testing.assert_close(r0[kind], _conditional_fit(kind), rtol=1e-7, atol=1e-9)
