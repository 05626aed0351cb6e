"""Plausible wrong answers for Lab 01's exercises: each must lose points (tests/test_labs.py runs them)."""

MUTANTS = {
    "count_params": {
        "counts tensors, not elements": "return len(list(model.parameters()))",
        "forgets the biases": "return int(sum(p.numel() for n, p in model.named_parameters() if 'bias' not in n))",
        "returns zero": "return 0",
    },
    "model_size_bytes": {
        "bits, not bytes": "return count_params(model) * bit_width",
        "ignores the bit width": "return count_params(model) * 4.0",
    },
    "layer_macs": {
        "ignores groups": """
            if isinstance(m, nn.Linear):
                return m.in_features * m.out_features * math.prod(record.out_shape[:-1])
            if isinstance(m, nn.Conv2d):
                c_out, h_out, w_out = record.out_shape
                return m.in_channels * m.kernel_size[0] * m.kernel_size[1] * h_out * w_out * c_out
            return 0
        """,
        "uses the input size instead of the output size": """
            if isinstance(m, nn.Linear):
                return m.in_features * m.out_features * math.prod(record.out_shape[:-1])
            if isinstance(m, nn.Conv2d):
                c_out, (_, h_in, w_in) = record.out_shape[0], record.in_shape
                return (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] * h_in * w_in * c_out
            return 0
        """,
        "linear counts only one position": """
            if isinstance(m, nn.Linear):
                return m.in_features * m.out_features
            if isinstance(m, nn.Conv2d):
                c_out, h_out, w_out = record.out_shape
                return (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] * h_out * w_out * c_out
            return 0
        """,
    },
    "count_macs": {
        "forgets the batch size": "return sum(layer_macs(r) for r in trace_layers(model, input_shape, (nn.Conv2d, nn.Linear)))",
        "counts FLOPs instead of MACs": """
            records = trace_layers(model, input_shape, (nn.Conv2d, nn.Linear))
            return 2 * input_shape[0] * sum(layer_macs(r) for r in records)
        """,
    },
    "activation_memory": {
        "total leaves out the input": """
            total = sum(math.prod(r.out_shape) for r in records)
            peak = max(math.prod(r.in_shape) + math.prod(r.out_shape) for r in records)
            return total, peak
        """,
        "peak is the largest output only": """
            total = math.prod(records[0].in_shape) + sum(math.prod(r.out_shape) for r in records)
            return total, max(math.prod(r.out_shape) for r in records)
        """,
        "off by one: skips the last layer": """
            total = math.prod(records[0].in_shape) + sum(math.prod(r.out_shape) for r in records[:-1])
            peak = max(math.prod(r.in_shape) + math.prod(r.out_shape) for r in records[:-1])
            return total, peak
        """,
    },
    "measure_latency": {
        "no warm-up": """
            samples = []
            for _ in range(repeats):
                start = timer()
                fn()
                if sync is not None:
                    sync()
                samples.append((timer() - start) * 1e3)
            s = np.asarray(samples)
            return {"median_ms": float(np.median(s)), "mean_ms": float(s.mean()), "p90_ms": float(np.percentile(s, 90)),
                    "p99_ms": float(np.percentile(s, 99)), "min_ms": float(s.min())}
        """,
        "mean reported as the median": """
            for _ in range(warmup):
                fn()
            samples = []
            for _ in range(repeats):
                start = timer()
                fn()
                if sync is not None:
                    sync()
                samples.append((timer() - start) * 1e3)
            s = np.asarray(samples)
            return {"median_ms": float(s.mean()), "mean_ms": float(s.mean()), "p90_ms": float(np.percentile(s, 90)),
                    "p99_ms": float(np.percentile(s, 99)), "min_ms": float(s.min())}
        """,
        "stops the clock before synchronising": """
            for _ in range(warmup):
                fn()
            samples = []
            for _ in range(repeats):
                start = timer()
                fn()
                stop = timer()
                if sync is not None:
                    sync()
                samples.append((stop - start) * 1e3)
            s = np.asarray(samples)
            return {"median_ms": float(np.median(s)), "mean_ms": float(s.mean()), "p90_ms": float(np.percentile(s, 90)),
                    "p99_ms": float(np.percentile(s, 99)), "min_ms": float(s.min())}
        """,
    },
    "arithmetic_intensity": {
        "weights counted once per sample": """
            flops = 2 * batch * layer_macs(record)
            elements = batch * (count_params(record.module) + math.prod(record.in_shape) + math.prod(record.out_shape))
            return flops / (elements * bytes_per_element)
        """,
        "MACs instead of FLOPs": """
            elements = count_params(record.module) + batch * (math.prod(record.in_shape) + math.prod(record.out_shape))
            return batch * layer_macs(record) / (elements * bytes_per_element)
        """,
    },
    "roofline_bound": {
        "max instead of min": "return max(peak_flops, intensity * bandwidth), 'memory' if intensity < peak_flops / bandwidth else 'compute'",
        "verdict reversed": "return min(peak_flops, intensity * bandwidth), 'compute' if intensity < peak_flops / bandwidth else 'memory'",
        "ridge point inverted": "return min(peak_flops, intensity * bandwidth), 'memory' if intensity < bandwidth / peak_flops else 'compute'",
    },
    "linear_batched": {
        "the per-sample loop (correct but slow)": "return np.stack([w @ xi for xi in x])",
        "wrong axis: w @ x.T": "return w @ x.T",
    },
    "estimate_energy_pj": {
        "bytes taken as 32-bit words": """
            compute = macs * (costs["fp32_mult"] + costs["fp32_add"])
            return compute + dram_bytes * costs["dram_read_32b"] + sram_bytes * costs["sram_read_32b"]
        """,
        "forgets the adds": """
            return macs * costs["fp32_mult"] + dram_bytes / 4 * costs["dram_read_32b"] + sram_bytes / 4 * costs["sram_read_32b"]
        """,
        "ignores the cost table argument": """
            c = HOROWITZ_45NM_PJ
            return macs * (c["fp32_mult"] + c["fp32_add"]) + dram_bytes / 4 * c["dram_read_32b"] + sram_bytes / 4 * c["sram_read_32b"]
        """,
    },
}

# The kernel exercise: each mutant is the body of the solution's region (the C inside `// ### BEGIN SOLUTION` ...
# `// ### END SOLUTION`; the kernel's signature, shared buffer and indices stay) with one mistake.
_TREE = """
float v = 0.0f;
if (i < n) v = x[i];
if (i + BLOCK < n) v += x[i + BLOCK];
buf[t] = v;
__syncthreads();
for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
}
if (t == 0) partial[blockIdx.x] = buf[0];
"""


def _mistake(old: str, new: str) -> str:
    assert old in _TREE, old
    return _TREE.replace(old, new)


MUTANTS["reduce_tree_src"] = {
    "missing __syncthreads in the tree (a race)": _mistake(
        "    if (t < s) buf[t] += buf[t + s];\n    __syncthreads();\n", "    if (t < s) buf[t] += buf[t + s];\n"),
    "no bounds check on the second element": _mistake("if (i + BLOCK < n) v += x[i + BLOCK];", "v += x[i + BLOCK];"),
    "each block sums only BLOCK elements": _mistake("if (i + BLOCK < n) v += x[i + BLOCK];", ""),
    "every thread writes the partial": _mistake("if (t == 0) partial[blockIdx.x] = buf[0];", "partial[blockIdx.x] = buf[0];"),
}
