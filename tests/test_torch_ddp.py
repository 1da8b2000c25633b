"""DeepWatershedDetector under DistributedDataParallel: 2 processes (gloo, CPU), 2 training steps, each rank
on its own images. After the steps both ranks hold the same parameters, and they equal one process
stepping on the mean of the two ranks' losses (what DDP's gradient averaging computes)."""

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from dwd_fast.torch import DeepWatershedDetector  # noqa: E402

STEPS, WORLD, LR = 2, 2, 0.05


def make_model():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU())
    return DeepWatershedDetector(backbone, 6, 4, levels=6, loss={"running_mean": None})


def batch(rank, step):
    """Two 24 x 28 images and their boxes, different for every rank and step."""
    rng = np.random.default_rng(100 * rank + step)
    images = torch.from_numpy(rng.standard_normal((2, 3, 24, 28)).astype(np.float32))
    targets = []
    for _ in range(2):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 16, (n, 2))
        wh = rng.uniform(4, 10, (n, 2))
        boxes = torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))
        targets.append({"boxes": boxes, "labels": torch.from_numpy(rng.integers(1, 4, n))})
    return images, targets


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(make_model())
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for step in range(STEPS):
            images, targets = batch(rank, step)
            opt.zero_grad()
            model(images, targets)["loss"].backward()
            opt.step()
        torch.save({k: v.detach() for k, v in model.module.state_dict().items()}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_two_steps(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]
    ref = make_model()
    initial = {k: v.clone() for k, v in ref.state_dict().items()}
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    for step in range(STEPS):
        opt.zero_grad()
        loss = sum(ref(*batch(r, step))["loss"] for r in range(WORLD)) / WORLD
        loss.backward()
        opt.step()
    for k, v in ref.state_dict().items():
        assert torch.equal(states[0][k], states[1][k]), f"{k} differs between the ranks"
        torch.testing.assert_close(states[0][k], v, rtol=1e-5, atol=1e-6)
    assert not torch.equal(states[0]["head.energy.weight"], initial["head.energy.weight"])
