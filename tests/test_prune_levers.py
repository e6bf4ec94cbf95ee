"""The pruning levers: protected stem and squeeze-excitation, latency-aware per-layer ratios,
iterative schedules, and unstructured magnitude pruning that says it buys no dense speed."""
import copy

import pytest
import torch

from edgebench.compress import PASSES, Candidate, Context
from edgebench.compress.channels import latency_aware_ratios, protected_layers
from edgebench.compress.layer_cost import layer_shapes, module_cost
from edgebench.compress.prune import PruneConfig
from edgebench.compress.sparsify import zero_fraction
from edgebench.models.zoo import build_module, resolve_model


@pytest.fixture()
def ctx(digits, tmp_path):
    torch.manual_seed(0)
    base = Candidate("baseline", module=build_module(resolve_model("tiny-cnn"), 10).eval(),
                     lineage=({"pass": "baseline", "config": {}},))
    return Context(dataset=digits, baseline=base, model_source=resolve_model("tiny-cnn"), work_dir=tmp_path,
                   budget=1.0)


def test_stem_and_squeeze_excitation_are_protected_by_default():
    model = build_module(resolve_model("mobilenet_v3_small"), 10)
    protected = {id(m) for m in protected_layers(model, PruneConfig())}
    assert id(model.features[0][0]) in protected
    se = model.features[1].block[1]
    # The squeeze only: fc2's outputs are the block's expanded channels, which stay prunable.
    assert type(se).__name__ == "SqueezeExcitation" and id(se.fc1) in protected and id(se.fc2) not in protected
    assert id(model.features[0][0]) not in {id(m) for m in protected_layers(model, PruneConfig(protect_stem=False))}


def test_a_gated_blocks_expansion_is_pruned_and_its_squeeze_kept():
    """Protecting the whole gate froze every gated block's expanded channels (DepGraph couples
    them with the gate's output): half the channels then kept half the MACs of mobilenet_v3."""
    import types

    import numpy as np

    from edgebench.compress.channels import prune_channels

    model = build_module(resolve_model("mobilenet_v3_small"), 10).eval()
    block = model.features[4].block  # expand 1x1, depthwise, SqueezeExcitation, project 1x1
    expanded, squeeze = block[0][0].out_channels, block[2].fc1.out_channels
    data = types.SimpleNamespace(train=types.SimpleNamespace(x=np.random.default_rng(0).standard_normal((2, 3, 64, 64),
                                                                                                    dtype=np.float32)),
                                 num_classes=10)
    pruned = prune_channels(copy.deepcopy(model), data, PruneConfig(importance="magnitude"))[0]
    block = pruned.features[4].block
    assert block[0][0].out_channels <= expanded // 2 + 8 and block[2].fc2.out_channels == block[0][0].out_channels
    assert block[2].fc1.out_channels == squeeze


def test_latency_aware_ratios_cut_costly_layers_more_at_the_same_cost_weighted_ratio():
    model = build_module(resolve_model("resnet18"), 10)
    example = torch.randn(2, 3, 64, 64)
    ratios = latency_aware_ratios(model, example, 0.5, [])
    shapes = layer_shapes(model, example)
    names = {m: n for n, m in model.named_modules()}
    costs = {m: module_cost(m, shapes[names[m]]) for m in ratios}
    costly, cheap = max(costs, key=costs.get), min(costs, key=costs.get)
    assert ratios[costly] > ratios[cheap]
    weighted = sum(ratios[m] * c for m, c in costs.items()) / sum(costs.values())
    assert weighted == pytest.approx(0.5, abs=0.08)  # clipping moves it a little


def test_iterative_latency_aware_prune_runs_and_says_how(ctx, digits):
    p = PASSES.get("prune")({"ratio": 0.5, "steps": 2, "ratios": "latency", "epochs": 0.04, "distill": False})
    out = p.apply(ctx.baseline, ctx)
    assert out.module[0].out_channels == 16  # the stem kept its channels
    assert out.module[3].out_channels < 32
    assert "2 steps" in out.notes[-1] and "latency" in out.notes[-1]
    assert out.module(torch.from_numpy(digits.eval.x[:2])).shape == (2, 10)


def test_unstructured_pruning_zeroes_weights_keeps_shapes_and_says_dense_runtimes_gain_nothing(ctx):
    out = PASSES.get("sparsify")({"sparsity": 0.6, "epochs": 0.04, "distill": False}).apply(ctx.baseline, ctx)
    assert zero_fraction(out.module) == pytest.approx(0.6, abs=0.02)
    assert [p.shape for p in out.module.parameters()] == [p.shape for p in ctx.baseline.module.parameters()]
    assert not any("weight_orig" in n for n, _ in out.module.named_parameters())  # masks made permanent
    assert out.name == "sparse60" and "gain no speed" in out.notes[-1]


def test_taylor_pruning_keeps_the_same_channels_whatever_ran_before(digits):
    """Taylor's gradients run in training mode, where dropout draws from torch's random state: a
    baseline trained in this process or found in the cache left it in different states, and the
    same model must still prune to the same channels (else its recovery is never found cached)."""
    from edgebench.compress.channels import prune_channels

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 10)).eval()
    pruned = []
    for state in (1, 2):
        torch.manual_seed(state)  # what ran before: another draw of dropout's masks
        pruned.append(prune_channels(copy.deepcopy(model), digits, PruneConfig(ratio=0.5))[0].state_dict())
    assert pruned[0].keys() == pruned[1].keys()
    assert all(torch.equal(pruned[0][k], pruned[1][k]) for k in pruned[0])
