"""Lab 02's generated modules (pruning, folding, sparse_encoding, compression): properties on random inputs."""
import heapq

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.pruning.compression import huffman_lengths, share_weights
from tinyml_lib.pruning.folding import fold_ar_scale, fold_layer, fold_vgg, kmeans
from tinyml_lib.models import vgg_like
from tinyml_lib.pruning import (compress_nm, decompress_nm, magnitude_mask, nm_mask, prune_vgg_channels, rank_channels,
                                sparsity)
from tinyml_lib.pruning.sparse_encoding import eie_encode, eie_matvec

seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), s=st.floats(0, 1), seed=seeds)
def test_magnitude_mask_prunes_exactly_and_smallest_first(n, s, seed):
    w = torch.randn(n, generator=torch.Generator().manual_seed(seed)).round(decimals=1)  # many ties
    mask = magnitude_mask(w, s)
    assert int((~mask).sum()) == int(s * n + 0.5)
    assert sparsity(w * mask) >= int(s * n + 0.5) / n - 1e-12
    if mask.any() and (~mask).any():
        assert w.abs()[~mask].max() <= w.abs()[mask].min()


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 9), groups=st.integers(1, 9), nm=st.sampled_from([(1, 4), (2, 4), (2, 8), (4, 8)]), seed=seeds)
def test_nm_compress_round_trip(rows, groups, nm, seed):
    n, m = nm
    w = torch.randn(rows, groups * m, generator=torch.Generator().manual_seed(seed))
    mask = nm_mask(w, n, m)
    assert bool((mask.view(rows, groups, m).sum(-1) == n).all())
    assert torch.equal(decompress_nm(*compress_nm(w, n, m), n, m), w * mask)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 20), pes=st.integers(1, 5), run=st.integers(1, 15),
       density=st.floats(0, 1), seed=seeds)
def test_eie_matvec_equals_dense(rows, cols, pes, run, density, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64) * (torch.rand(rows, cols, generator=g) < density)
    a = torch.relu(torch.randn(cols, generator=g, dtype=torch.float64))
    b, _ = eie_matvec(eie_encode(w, pes, run), a, rows)
    torch.testing.assert_close(b, w @ a)


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(0, 1000), min_size=1, max_size=20))
def test_huffman_is_optimal_and_complete(counts):
    c = torch.tensor(counts)
    lengths = huffman_lengths(c)
    used = [v for v in counts if v > 0]
    if len(used) >= 2:
        assert abs(sum(2.0 ** -int(l) for l in lengths[c > 0]) - 1.0) < 1e-12
        heap, best = list(used), 0
        heapq.heapify(heap)
        while len(heap) > 1:
            merged = heapq.heappop(heap) + heapq.heappop(heap)
            best += merged
            heapq.heappush(heap, merged)
        assert int((c * lengths).sum()) == best


def test_fold_layer_is_lossless_on_duplicates_and_ar_scale_bounds():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 0])
    w, w_next = base[labels], torch.randn(3, 7, generator=g)
    wf, nf = fold_layer(w, w_next, labels, 4)
    x = torch.randn(5, 6, generator=g)
    torch.testing.assert_close(torch.relu(x @ wf.T) @ nf.T, torch.relu(x @ w.T) @ w_next.T)
    alpha = fold_ar_scale(torch.randn(7, 6, generator=g), labels, 4)
    assert bool((alpha >= 1 - 1e-6).all()), "averaging never increases the variance: alpha >= 1"
    assert abs(float(alpha[3]) - 1.0) < 1e-6, "a single member needs no repair"


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(20, 0) + 0.1 * torch.randn(60, 2, generator=g)
    mu, labels = kmeans(x, x[[0, 20, 40]])
    torch.testing.assert_close(mu, centres, atol=0.1, rtol=0)
    assert torch.equal(labels, torch.arange(3).repeat_interleave(20))


def test_share_weights_keeps_zeros_and_uses_the_codebook():
    w = torch.randn(30, 30, generator=torch.Generator().manual_seed(2))
    w = w * magnitude_mask(w, 0.7)
    codebook, idx, shared = share_weights(w, 8)
    assert torch.equal(shared == 0, w == 0)
    assert torch.equal(shared[shared != 0], codebook[idx])


def test_channel_pruning_and_folding_keep_the_function_at_full_width():
    model = vgg_like().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(prune_vgg_channels(model, 1.0)(x), model(x))
    torch.testing.assert_close(fold_vgg(model, 1.0)(x), model(x), atol=1e-4, rtol=1e-4)
    assert sum(p.numel() for p in fold_vgg(model, 0.5).parameters()) == \
        sum(p.numel() for p in prune_vgg_channels(model, 0.5).parameters())


def test_fold_ar_scale_on_hand_worked_clusters():
    # Scale does not matter (directions only): two orthogonal members -> 2 / sqrt(2); two parallel -> 1;
    # u, u, v with v orthogonal to u -> ||2u + v|| = sqrt(5), so 3 / sqrt(5).
    w = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [2.0, 2.0], [1.0, 0.0], [5.0, 0.0], [0.0, 7.0]])
    alpha = fold_ar_scale(w, torch.tensor([0, 0, 1, 1, 2, 2, 2]), 3)
    torch.testing.assert_close(alpha, torch.tensor([2 ** 0.5, 1.0, 3 / 5 ** 0.5]))


def test_share_weights_moves_the_centroids_to_the_cluster_means():
    # Non-zeros 1.0, 1.1, 1.2 and 5.0, 5.1, 5.2: the centroids start at linspace(1.0, 5.2) and end at the means.
    w = torch.tensor([[1.0, 0.0, 1.1, 5.0], [5.2, 1.2, 0.0, 5.1]])
    codebook, idx, shared = share_weights(w, 2)
    torch.testing.assert_close(codebook, torch.tensor([1.1, 5.1]))
    assert idx.tolist() == [0, 0, 1, 1, 0, 1]   # flat order of the non-zeros
    torch.testing.assert_close(shared, torch.tensor([[1.1, 0.0, 1.1, 5.1], [5.1, 1.1, 0.0, 5.1]]))


def test_rank_channels_keeps_the_strongest_filters():
    w = torch.tensor([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, -5.0]])   # norms 3, 1, 2, 5
    assert rank_channels(w, 2).tolist() == [0, 3]
    assert rank_channels(w, 3).tolist() == [0, 2, 3]
    assert rank_channels(torch.tensor([[2.0], [-2.0], [1.0]]), 1).tolist() == [0]   # a tie: the lower index


def test_nm_mask_and_compression_on_a_hand_worked_row():
    w = torch.tensor([[0.1, -0.9, 0.5, 0.2, 1.0, 1.0, 1.0, -3.0]])
    assert nm_mask(w).tolist() == [[False, True, True, False, True, False, False, True]]   # ties: the lower index
    values, indices = compress_nm(w)
    torch.testing.assert_close(values, torch.tensor([[-0.9, 0.5, 1.0, -3.0]]))
    assert indices.tolist() == [[1, 2, 0, 3]]


def test_eie_encoding_on_hand_worked_columns():
    values, rel, col_ptr = eie_encode(torch.tensor([[0.0], [0.0], [3.0], [0.0], [5.0]]), 1, 15)[0]
    assert (values.tolist(), rel.tolist(), col_ptr.tolist()) == ([3.0, 5.0], [2, 1], [0, 2])
    values, rel, col_ptr = eie_encode(torch.tensor([[0.0], [0.0], [3.0], [0.0], [5.0]]), 1, 1)[0]   # runs of 1 at most
    assert (values.tolist(), rel.tolist(), col_ptr.tolist()) == ([0.0, 3.0, 5.0], [1, 0, 1], [0, 3])
    values, rel, _ = eie_encode(torch.tensor([[0.0]] * 17 + [[2.0]]), 1, 15)[0]                   # a filler entry
    assert (values.tolist(), rel.tolist()) == ([0.0, 2.0], [15, 1])
    b, macs = eie_matvec(eie_encode(torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]), 2, 15), torch.tensor([1.0, 0.0]), 3)
    assert b.tolist() == [0.0, 2.0, 0.0] and macs == 1   # column 1 is skipped: its activation is zero


def test_pruning_drops_dead_channels_and_folding_merges_twins_without_changing_the_function():
    torch.manual_seed(0)
    dead, twins = vgg_like().eval(), vgg_like().eval()
    pairs = lambda m: zip([c for c in m.modules() if isinstance(c, torch.nn.Conv2d)],
                          [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)])
    with torch.no_grad():
        for conv, bn in pairs(dead):   # a quarter of the channels output exactly zero (BN weight and bias 0)
            off = torch.randperm(bn.num_features)[: bn.num_features // 4]
            bn.weight[off], bn.bias[off] = 0.0, 0.0
        for conv, bn in pairs(twins):  # the second half of every layer's channels repeats the first half
            h = conv.out_channels // 2
            conv.weight[h:] = conv.weight[:h]
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t[h:] = t[:h]
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(prune_vgg_channels(dead, 0.75)(x), dead(x))
    torch.testing.assert_close(fold_vgg(twins, 0.5)(x), twins(x), atol=1e-5, rtol=1e-5)


def test_folding_beats_channel_pruning_where_folding_is_usable():
    # Lab 02 section 6 on the shipped checkpoint: at 80 % of the channels (no data, no fine-tuning) folding + Fold-AR
    # is usable, magnitude channel pruning is far behind (measured 71.30 % vs 30.60 % on the first 2,000 test images).
    from torch.utils.data import DataLoader, TensorDataset
    from tinyml_lib.checkpoints import load_checkpoint
    from tinyml_lib.data.fashion_mnist import load_fashion_mnist
    from tinyml_lib.grading import target
    from tinyml_lib.metrics import count_params
    from tinyml_lib.training import evaluate
    torch.set_num_threads(1)
    x, y = load_fashion_mnist("test")
    loader = DataLoader(TensorDataset(x[:2000], y[:2000]), batch_size=500)
    dense = load_checkpoint("vgg")[0]
    pruned, folded = prune_vgg_channels(dense, 0.8), fold_vgg(dense, 0.8, repair=True)
    assert count_params(pruned) == count_params(folded)
    assert count_params(dense) / count_params(folded) >= target("lab02.fold_usable_compression")
    fold_acc, prune_acc = evaluate(folded, loader), evaluate(pruned, loader)
    assert fold_acc >= target("lab02.fold_usable_acc"), fold_acc
    assert fold_acc >= prune_acc + target("lab02.fold_vs_prune_margin"), (fold_acc, prune_acc)
