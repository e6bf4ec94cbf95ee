"""Every distillation family trains: through the distill pass's own objective, on two tiny CNNs,
each loss's gradient reaches the student and a short run lowers it; plugins are not shadowed."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compress.distill import DistillConfig, DistillPass
from edgebench.compress.losses import available_losses, loss_class

NEW_FAMILIES = ["ft", "fsp", "vid", "ab", "byot", "dml", "datafree", "adversarial"]


def _cnn(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 5))


def _pair():
    torch.manual_seed(0)
    teacher = _cnn(16).eval()
    student = _cnn(4).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 16, 16, generator=g)
    y = torch.randint(0, 5, (16,), generator=g)
    return student, teacher, x, y


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_gradient_reaches_the_student_and_a_short_run_lowers_the_loss(name):
    student, teacher, x, y = _pair()
    # a small generator and a short warm-up keep the test fast
    options = {"width": 8, "latent": 16, "warmup": 2, "batch": 16} if name == "datafree" else {}
    config = DistillConfig(losses=[{"name": name, "options": options}], ce_weight=0.0)
    loss_fn, extra, cleanup = DistillPass(config.model_dump()).objective(student, teacher, x[:2].numpy())
    try:
        torch.manual_seed(2)
        first = loss_fn(student, x, y)
        first.backward()
        grads = [p.grad for p in student.parameters()]
        assert all(g is not None for g in grads[:1]) and grads[0].abs().sum() > 0, "no gradient reached the student"
        optimizer = torch.optim.Adam(list(student.parameters()) + list(extra), lr=3e-3)
        values = []
        for _ in range(30):
            optimizer.zero_grad()
            loss = loss_fn(student, x, y)
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        assert np.isfinite(values).all()
        assert np.mean(values[-5:]) < np.mean(values[:5]), f"{name}: {values[:3]} ... {values[-3:]}"
    finally:
        cleanup()


def test_every_family_is_registered_and_no_stub_remains():
    names = available_losses()
    assert set(NEW_FAMILIES) <= set(names)
    families = {loss_class(n).family for n in names}
    assert {"response", "feature", "relation", "self", "mutual", "datafree", "adversarial"} <= families
    assert not any(getattr(loss_class(n), "planned", False) for n in names)


def test_data_free_student_never_sees_a_real_batch():
    student, teacher, x, y = _pair()
    seen = []
    student[0].register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    distill = DistillPass({"losses": [{"name": "datafree", "options": {"width": 8, "warmup": 2, "batch": 16}}]})
    loss_fn, extra, cleanup = distill.objective(student, teacher, x[:2].numpy())
    seen.clear()
    loss_fn(student, x, y).backward()
    during_training = list(seen)
    cleanup()  # BatchNorm statistics are re-estimated on synthetic batches too
    # the student's batch, and the generator's images it is scored on adversarially: never the real batch
    assert any(s.shape == x.shape for s in during_training)
    assert all(s.shape[1:] == x.shape[1:] and not torch.equal(s[:len(x)], x) for s in seen)


def test_mutual_learning_trains_a_peer_of_the_same_architecture():
    student, teacher, x, y = _pair()
    loss_fn, extra, cleanup = DistillPass({"losses": [{"name": "dml"}]}).objective(student, teacher, x[:2].numpy())
    peer = loss_fn.modules[0].peer
    assert type(peer) is type(student) and not torch.equal(peer[0].weight, student[0].weight)
    before = peer[0].weight.detach().clone()
    loss_fn(student, x, y).backward()
    optimizer = torch.optim.SGD(extra, lr=0.1)
    optimizer.step()
    assert not torch.equal(before, peer[0].weight)
    cleanup()
    assert not torch.equal(student[0].weight, peer[0].weight)  # the student stays the candidate by default
    loss_fn, _, cleanup = DistillPass({"losses": [{"name": "dml", "options": {"keep": "peer"}}]}).objective(
        student, teacher, x[:2].numpy())
    peer = loss_fn.modules[0].peer
    cleanup()
    assert torch.equal(student[0].weight, peer[0].weight)  # keep: peer makes the peer the candidate


def test_a_plugin_loss_registers_and_is_used(tmp_path):
    plugin = tmp_path / "my_losses.py"
    plugin.write_text(
        "from edgebench.compress.losses import register\n"
        "from edgebench.compress.losses.base import DistillLoss\n"
        "@register('l2logits')\n"
        "class L2(DistillLoss):\n"
        "    def forward(self, s, t, *rest, **batch):\n"
        "        return ((s - t) ** 2).mean()\n")
    code = ("from edgebench.compress.losses import loss_class; from edgebench.compress.distill import DistillPass;"
            "DistillPass({'losses': [{'name': 'l2logits'}]}); print(loss_class('l2logits').__module__)")
    env = {**os.environ, "EDGEBENCH_PLUGINS": "my_losses",
           "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "my_losses"


def test_data_free_training_runs_the_steps_the_game_needs():
    from types import SimpleNamespace

    from edgebench.compress.distill import LossSpec, _step_floor

    ctx = SimpleNamespace(budget=1.0, dataset=SimpleNamespace(train=[0] * 1000))  # 15 batches of 64 an epoch
    assert _step_floor(30.0, [LossSpec(name="kd")], ctx) == 30.0
    assert _step_floor(30.0, [LossSpec(name="datafree", options={"steps": 1500})], ctx) == 100.0
    assert _step_floor(200.0, [LossSpec(name="datafree", options={"steps": 1500})], ctx) == 200.0
    assert _step_floor(0.0, [LossSpec(name="datafree")], ctx) == 0.0  # no training asked for, none run
    quick = SimpleNamespace(budget=0.1, dataset=ctx.dataset)
    assert _step_floor(3.0, [LossSpec(name="datafree", options={"steps": 1500})], quick) == 10.0
