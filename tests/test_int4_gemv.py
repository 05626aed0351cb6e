"""Lab 06's int4 GEMV reference (tinyml_lib.kernels.int4_gemv) against Lab 07's packing and dequantization, and the
round-robin timer its ladder plot uses."""
import time

import numpy as np
import pytest
import torch

from tinyml_lib.kernels.int4_gemv import gemv_w4_ref, random_w4_layer, unpack_int4_bytes
from tinyml_lib.llm.awq import dequantize_int4_groups, pack_int4, quantize_int4_groups
from tinyml_lib.timing import round_robin_seconds


def test_unpacking_inverts_lab07s_pack_int4():
    codes = torch.randint(0, 16, (5, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(unpack_int4_bytes(pack_int4(codes).numpy()), codes.numpy())
    assert unpack_int4_bytes(np.array([[0x21, 0xF0]], np.uint8)).tolist() == [[1, 2, 0, 15]]   # low nibble first


def test_reference_equals_lab07s_dequantized_weights_times_x():
    w = torch.randn(70, 256, generator=torch.Generator().manual_seed(1))
    codes, scale, zero = quantize_int4_groups(w, group_size=64)
    x = np.random.default_rng(2).standard_normal(256).astype(np.float32)
    expected = dequantize_int4_groups(codes, scale, zero, 64).double().numpy() @ x.astype(np.float64)
    got = gemv_w4_ref(pack_int4(codes).numpy(), scale.numpy(), zero.numpy(), x, 64, rows=16)   # several chunks
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_random_layer_is_seeded_and_its_outputs_are_of_unit_scale():
    first, again = random_w4_layer(300, 512, 64, seed=3), random_w4_layer(300, 512, 64, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    packed, scale, zero, x = first
    assert (packed.shape, scale.shape, zero.shape, x.shape) == ((300, 256), (300, 8), (300, 8), (512,))
    assert (packed.dtype, scale.dtype, zero.dtype, x.dtype) == (np.uint8, np.float32, np.uint8, np.float32)
    assert 0.7 < gemv_w4_ref(packed, scale, zero, x, 64).std() < 1.4
    with pytest.raises(ValueError, match="scale and zero"):
        gemv_w4_ref(packed, scale[:, :4], zero, x, 64)
    with pytest.raises(ValueError, match="expected an even k divisible by group"):
        random_w4_layer(2, 100, 64)


def test_round_robin_seconds_orders_and_times_every_callable():
    calls = {"slow": 0, "fast": 0}

    def sleeper(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)
        return run
    got = round_robin_seconds({"slow": sleeper("slow", 0.03), "fast": sleeper("fast", 0.005)}, rounds=3)
    assert list(got) == ["slow", "fast"] and got["slow"] >= 0.03 and got["fast"] >= 0.005
    assert got["slow"] > got["fast"]
    assert calls["slow"] >= 4 and calls["fast"] >= 4 * 4   # a warm-up, then samples of >= 20 ms
    with pytest.raises(ValueError, match="rounds: expected >= 1"):
        round_robin_seconds({"x": lambda: None}, rounds=0)
