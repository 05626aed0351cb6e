"""Lab 04's library (tinyml_lib.nas, generated from the lab) against independent references: test_supernet's own
extraction and MAC formula, scipy's Kendall tau, the shipped table of subnets, and hand-worked peaks and queries."""
import math
import random
import time

import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from test_supernet import SPACE, analytic_macs, net, one_thread, random_configs  # noqa: F401 (fixtures)
from test_supernet import extract_subnet as independent_extraction
from tinyml_lib.data.nas import load_subnet_dataset
from tinyml_lib.data.manifest import load_manifest
from tinyml_lib.metrics import count_params
from tinyml_lib.nas.cost import PieceCost, SubnetCost, build_cost_table, predict_cost, subnet_cost, time_round_robin_ms
from tinyml_lib.nas.extraction import extract_block, extract_subnet, load_conv_bn
from tinyml_lib.nas.predictor import fit_predictor, kendall_tau
from tinyml_lib.nas.search import (Constraints, CountedPredictor, EvoConfig, best_so_far, check_feasible,
                                   evolutionary_search, random_search)
from tinyml_lib.nas.space import crossover_subnets, encode_subnet, mutate_subnet, sample_subnet
from tinyml_lib.supernet import SubnetConfig, resize


@pytest.fixture(scope="module")
def table(net):
    """The cost table of the perturbed supernet, latency left out (0 ms per piece): MACs and peaks only."""
    return build_cost_table(net, lambda pieces: [0.0] * len(pieces))


def test_the_shipped_table_is_the_library_sampler_seeded_as_its_record_says():
    data = load_subnet_dataset(SPACE)
    assert len(data.configs) == data.record["count"] == 2000
    rng, drawn = random.Random(data.record["seed"]), []
    while len(drawn) < 50:
        config = sample_subnet(SPACE, rng)
        if config not in drawn:
            drawn.append(config)
    assert drawn == data.configs[:50]
    assert [int(m) for m in data.macs[:50]] == [analytic_macs(c) for c in drawn]
    assert 80.0 < float(data.accuracy.min()) and float(data.accuracy.max()) < 95.0
    assert data.record["supernet_sha256"] == load_manifest()["checkpoints/supernet.pt"]["sha256"]


def test_encoding_is_one_hot_per_slot_and_injective():
    configs = random_configs(500, seed=5)
    codes = torch.stack([encode_subnet(c, SPACE) for c in configs])
    assert codes.shape == (500, 59) and set(codes.unique().tolist()) == {0.0, 1.0}
    assert codes.sum(1).tolist() == [2 + 2 * sum(c.depths) for c in configs]
    assert len({tuple(row.tolist()) for row in codes}) == len(set(configs))


def test_mutation_and_crossover_stay_in_the_space_and_respect_their_parents():
    configs, rng = random_configs(200, seed=6), random.Random(0)
    for a, b in zip(configs, configs[1:]):
        SPACE.check(mutate_subnet(a, SPACE, rng, 0.5))
        child = crossover_subnets(a, b, SPACE, rng)
        SPACE.check(child)
        assert child.resolution in (a.resolution, b.resolution) and child.width in (a.width, b.width)
        for s, d in enumerate(child.depths):
            assert d in (a.depths[s], b.depths[s])
            for i in range(d):
                donors = [p for p in (a, b) if p.depths[s] > i]
                assert child.kernels[s][i] in [p.kernels[s][i] for p in donors]
    with pytest.raises(ValueError, match="probability"):
        mutate_subnet(configs[0], SPACE, rng, 1.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_extraction_equals_an_independent_one(net, seed):
    for config in random_configs(3, seed=seed) + [SPACE.largest(), SPACE.smallest()]:
        x = resize(torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed)), config.resolution)
        ours, theirs = extract_subnet(net, config), independent_extraction(net, config)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(ours(x), net(x, config), rtol=1e-4, atol=1e-5)
        assert count_params(ours) == count_params(theirs)


def test_load_conv_bn_refuses_a_weight_of_another_shape(net):
    from tinyml_lib.models import conv_bn_relu
    with pytest.raises(ValueError, match="expected the conv's shape"):
        load_conv_bn(conv_bn_relu(8, 16, 1), net.head.weight[:16, :4], net.head_bn)
    block = extract_block(net.stages[2][1], 48, 48, 5, 4, 1)
    assert block.residual and block.block[1][0].kernel_size == (5, 5)


def test_the_table_adds_up_to_the_counted_cost(net, table):
    assert len(table) == 333
    for config in random_configs(8, seed=7) + [SPACE.largest(), SPACE.smallest()]:
        cost = predict_cost(table, config)
        assert cost.macs == analytic_macs(config)
        assert (cost.macs, cost.peak_kb) == subnet_cost(extract_subnet(net, config), config.resolution)
    # hand-worked peaks (bytes at int8): the stride-2 depthwise of stage 0's first block at expand 6, 28x28 input;
    # the expand 1x1 of that block at expand 3, 20x20 input
    assert predict_cost(table, SPACE.largest()).peak_kb * 1024 == 96 * 14 * 14 + 96 * 7 * 7
    assert predict_cost(table, SPACE.smallest()).peak_kb * 1024 == 16 * 10 * 10 + 48 * 10 * 10


def test_round_robin_timing_calls_the_pieces_in_turn_and_keeps_each_ones_minimum():
    calls = []

    class Probe(nn.Module):
        def __init__(self, name, seconds):
            super().__init__()
            self.name, self.seconds = name, seconds

        def forward(self, x):
            calls.append(self.name)
            time.sleep(self.seconds)
            return x

    ms = time_round_robin_ms([(Probe("a", 0.002), (1,)), (Probe("b", 0.0), (1, 4))], rounds=4)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a", "b"] * 4   # warm-up, then one call of each per round
    assert len(ms) == 2 and ms[0] >= 2.0 and 0.0 < ms[1] < ms[0]
    with pytest.raises(ValueError, match="rounds"):
        time_round_robin_ms([], rounds=0)


def test_kendall_tau_is_scipys_tau_b():
    g = torch.Generator().manual_seed(0)
    for n, levels in ((5, 100), (50, 4), (300, 10)):
        x, y = torch.randint(0, levels, (n,), generator=g), torch.randint(0, levels, (n,), generator=g)
        y = y + x   # correlated, with ties in both
        assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, rel=1e-12)
    with pytest.raises(ValueError, match="constant"):
        kendall_tau([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_the_predictor_learns_a_known_function():
    configs = random_configs(600, seed=8)
    features = torch.stack([encode_subnet(c, SPACE) for c in configs])
    weights = torch.linspace(-1, 1, 59)
    acc = 88.0 + features @ weights * 0.3
    model = fit_predictor(features[:500], acc[:500])
    with torch.no_grad():
        assert kendall_tau(model(features[500:]), acc[500:]) > 0.8
    assert float(model.mean) == pytest.approx(float(acc[:500].mean()), rel=1e-6)


def test_searches_spend_their_budget_and_respect_the_limits(table):
    def fake_model(codes):   # "accuracy" rises with every kernel and expand choice: the limits bind
        return 80.0 + codes[:, 5:].flatten(1) @ torch.arange(54, dtype=torch.float32) / 100
    evo = EvoConfig(population=50, generations=10)
    limits = Constraints(max_macs=predict_cost(table, SPACE.largest()).macs / 3)
    wins = 0
    for seed in range(5):
        results = {}
        for name in ("random", "evolutionary"):
            predict = CountedPredictor(fake_model, lambda c: encode_subnet(c, SPACE))
            if name == "random":
                results[name] = random_search(SPACE, table, predict, limits, evo.queries(), random.Random(seed))
            else:
                results[name] = evolutionary_search(SPACE, table, predict, limits, evo, random.Random(seed))
            assert predict.queries == evo.queries() == 50 + 9 * 38
            assert limits.allows(predict_cost(table, results[name].best))
            assert results[name].curve == best_so_far(results[name].curve)
            assert results[name].score == results[name].curve[-1]
        wins += results["evolutionary"].score >= results["random"].score
    assert wins >= 4   # measured: 10 of 10 seeds at this budget, 5 of 10 at 65 queries
    with pytest.raises(ValueError, match="max_macs=100 is below the smallest subnet"):
        check_feasible(SPACE, table, Constraints(max_macs=100))


def test_constraints_and_curves():
    cost = SubnetCost(latency_ms=2.0, macs=1000, peak_kb=10.0)
    assert Constraints(max_macs=1000, max_peak_kb=10.0, max_latency_ms=2.0).allows(cost)   # limits are inclusive
    assert not Constraints(max_macs=999).allows(cost) and not Constraints(max_peak_kb=9.9).allows(cost)
    assert not Constraints(max_latency_ms=1.9).allows(cost) and Constraints().allows(cost)
    assert best_so_far([1.0, 3.0, 2.0, 5.0]) == [1.0, 3.0, 3.0, 5.0]
    assert EvoConfig(population=100, generations=10, parent_ratio=0.25).queries() == 100 + 9 * 75
    assert math.isinf(Constraints().max_macs) and PieceCost(1.0, 2, 3).peak == 3
    assert isinstance(SubnetConfig(20, 1, (1, 1, 1), ((3,),) * 3, ((3,),) * 3).width, float)
