"""One implementation per idea: a later lab imports an earlier lab's function instead of grading it again.

Lab 03's k-means quantization is Lab 02's k-means on scalars; Lab 07's int4 group quantizer is Lab 03's linear
quantizer with its codes shifted to unsigned. Where two labs do grade a function of one name, the later one's
docstring names the earlier one and says why it differs (Lab 07's per-row magnitude_mask, its negative-bit
pack_signs).
"""
import ast
import json
import re

import pytest
import torch

import tinyml_lib.llm.awq as awq
import tinyml_lib.quantization.kmeans as kmeans_module
from autograders.course import ROOT, lab_names
from autograders.mutation import load_mutants
from tinyml_lib.export import lab_number
from tinyml_lib.pruning import folding
from tinyml_lib.quantization import linear

BEGIN = re.compile(r"^[ \t]*(?://[ \t]*)?### BEGIN SOLUTION", re.M)


def graded_functions(lab: str, where: str = "solutions") -> dict[str, str]:
    """name -> docstring of every function of a lab whose body holds a solution region (an exercise)."""
    found = {}
    for cell in json.loads((ROOT / where / lab / f"{lab}.ipynb").read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not cell["metadata"].get("nbgrader", {}).get("solution"):
            continue
        marks = [source.count("\n", 0, m.start()) + 1 for m in BEGIN.finditer(source)]
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and any(node.lineno <= m <= node.end_lineno for m in marks):
                found[node.name] = ast.get_docstring(node) or ""
    return found


def defined_functions(lab: str, where: str) -> dict[str, str]:
    """name -> source of the code cell that defines it, for every top-level function of a notebook."""
    cells = json.loads((ROOT / where / lab / f"{lab}.ipynb").read_text())["cells"]
    return {node.name: "".join(c["source"]) for c in cells if c["cell_type"] == "code"
            for node in ast.parse("".join(c["source"])).body if isinstance(node, ast.FunctionDef)}


def test_a_function_graded_in_two_labs_says_why_in_the_later_one():
    first: dict[str, str] = {}
    for lab in lab_names():
        for name, doc in graded_functions(lab).items():
            if name in first:
                earlier = f"Lab {lab_number(first[name])}'s {name}"
                assert earlier in doc, (f"{name} is graded in {first[name]} and again in {lab}: import the earlier one "
                                        f"from tinyml_lib, or say in the docstring why it differs ('{earlier} ...')")
            else:
                first[name] = lab


def test_the_duplicates_this_test_knows_are_the_ones_documented():
    # The rule above let exactly these two through; a new duplicate should be a decision, not an accident.
    graded = {lab: set(graded_functions(lab)) for lab in lab_names()}
    seen, twice = set(), set()
    for lab in lab_names():
        twice |= graded[lab] & seen
        seen |= graded[lab]
    assert twice == {"magnitude_mask", "pack_signs"}


@pytest.mark.parametrize("lab, name", [("lab03_quantization", "kmeans_quantize"), ("lab07_llm", "quantize_int4_groups")])
def test_reused_functions_are_given_not_graded(lab, name):
    assert name not in graded_functions(lab), f"{name} is an exercise of {lab} again"
    assert name not in load_mutants(lab), f"mutants of {name} left in autograders/mutants/{lab}.py"
    released = defined_functions(lab, "labs")[name]
    assert "NotImplementedError" not in released and "YOUR CODE HERE" not in released, \
        f"{name} is given in {lab}: the release must carry its code, not a stub"


def test_kmeans_quantize_runs_lab02s_kmeans(monkeypatch):
    assert kmeans_module.kmeans is folding.kmeans, "tinyml_lib.quantization.kmeans imports Lab 02's kmeans"
    calls = []

    def spy(x, init, n_iter=20):
        calls.append((tuple(x.shape), tuple(init.shape), n_iter))
        return folding.kmeans(x, init, n_iter)

    monkeypatch.setattr(kmeans_module, "kmeans", spy)
    codebook, idx = kmeans_module.kmeans_quantize(torch.tensor([[0.0, 0.1], [0.9, 1.0]]), 1, n_iter=3)
    assert calls == [((4, 1), (2, 1), 3)], "one call: the weights as (n, 1) points, 2^n_bits linear centroids"
    torch.testing.assert_close(codebook, torch.tensor([0.05, 0.95]))
    # a changed Lab 02 function changes Lab 03's result: there is no second copy of the algorithm
    monkeypatch.setattr(kmeans_module, "kmeans", lambda x, init, n_iter=20: (init + 1, torch.zeros(len(x), dtype=torch.long)))
    codebook, idx = kmeans_module.kmeans_quantize(torch.tensor([0.0, 3.0]), 1)
    assert codebook.tolist() == [1.0, 4.0] and idx.tolist() == [0, 0]


def test_quantize_int4_groups_runs_lab03s_linear_quantize(monkeypatch):
    assert awq.linear_quantize is linear.linear_quantize, "tinyml_lib.llm.awq imports Lab 03's linear_quantize"
    calls = []

    def spy(r, n_bits=8, symmetric=False, axis=None, group_size=None):
        calls.append((tuple(r.shape), n_bits, symmetric, axis, group_size))
        return linear.linear_quantize(r, n_bits, symmetric, axis, group_size)

    monkeypatch.setattr(awq, "linear_quantize", spy)
    awq.quantize_int4_groups(torch.randn(3, 8), 4, symmetric=True)
    assert calls == [((3, 8), 4, True, None, 4)]


@pytest.mark.parametrize("symmetric", [False, True])
def test_int4_codes_are_lab03_codes_plus_8(symmetric):
    w = torch.randn(16, 192, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.1, 3, 192)
    codes, scale, zero = awq.quantize_int4_groups(w, 64, symmetric)
    q, s, z = linear.linear_quantize(w, 4, symmetric, group_size=64)
    assert torch.equal(codes.to(torch.int32), q + 8)
    assert torch.equal(zero.to(torch.int32).repeat_interleave(64, 1), z + 8)
    assert torch.equal(scale.repeat_interleave(64, 1), s)
    torch.testing.assert_close(awq.dequantize_int4_groups(codes, scale, zero, 64), linear.dequantize(q, s, z),
                               rtol=0, atol=0)
