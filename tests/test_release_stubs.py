"""The student release's stubs teach: each names its function and section; each kernel skeleton compiles as given."""
import re

import nbformat
import pytest
from nbgrader.utils import compute_checksum

from autograders.course import ROOT, lab_names
from autograders.mutation import SOLUTION_REGION, mutate
from autograders.release_stubs import teach_source, teach_stubs
from tinyml_lib.export import lab_number

LABS = lab_names()
PY_STUB = re.compile(r'^(?P<indent>[ \t]*)raise NotImplementedError\("(?P<name>\w+) \((?P<section>§\d+ [^"]+)\): '
                     r'replace this line with your code"\)$', re.M)
C_STUB = re.compile(r"^[ \t]*// YOUR CODE HERE \((?P<name>\w+), (?P<section>§\d+ [^)]+.*)\): the kernel compiles as "
                    r"given; its tests fail until you write it$", re.M)
SRC_ASSIGNMENT = re.compile(r"^(?P<var>[A-Z0-9_]+_SRC) = r(?:'''|\"\"\")", re.M)
KERNEL_NAME = re.compile(r"(?:__global__\s+)?\bvoid\s+(\w+)\s*\(")   # a CUDA kernel, or a C function (Lab 06)


def release(lab: str):
    return nbformat.read(ROOT / "labs" / lab / f"{lab}.ipynb", as_version=4)


def kernel_cells(lab: str) -> list:
    return [c for c in release(lab).cells if c.cell_type == "code" and SRC_ASSIGNMENT.search(c.source)
            and c.metadata.get("nbgrader", {}).get("solution")]


@pytest.mark.parametrize("lab", LABS)
def test_no_bare_stub_and_every_stub_names_function_and_section(lab):
    sections = set()
    for cell in release(lab).cells:
        if cell.cell_type == "markdown":
            sections |= {f"§{n} {t.strip()}" for n, t in re.findall(r"^## (\d+)\.\s*(.+)$", cell.source, re.M)}
    stubs = 0
    for cell in release(lab).cells:
        if cell.cell_type != "code":
            continue
        assert "raise NotImplementedError()" not in cell.source, f"bare stub in {lab}:\n{cell.source}"
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            if "NotImplementedError" in line:
                match = PY_STUB.match(line)
                assert match, f"stub without function and section in {lab}: {line!r}"
                assert match["section"] in sections, match["section"]
                assert re.search(rf"^\s*def {match['name']}\(", cell.source, re.M), f"{match['name']} not defined here"
                assert lines[i - 1] == match["indent"] + "# YOUR CODE HERE", "the `# YOUR CODE HERE` line is kept"
                stubs += 1
        for match in C_STUB.finditer(cell.source):
            assert match["section"] in sections and match["name"] in KERNEL_NAME.findall(cell.source)
            stubs += 1
        if (gid := cell.metadata.get("nbgrader", {}).get("checksum")) is not None:
            assert gid == compute_checksum(cell), f"stale nbgrader checksum in {lab}"
    assert stubs >= 1


# Labs whose row in the curriculum (../shared/curriculum/README.md) has no kernel: 04 NAS, "latency measured on the CPU"
# (both parts); Lab 05's part 2 (its kernel, the fused softmax + KL, is part 1's).
NO_KERNEL = {"lab04_nas", "lab04b_cheap_nas", "lab05b_tiny_training"}


@pytest.mark.parametrize("lab", LABS)
def test_kernel_skeletons_compile_on_the_cpu_tier(lab, monkeypatch):
    from tinyml_lib.kernels import gpu_tier, load_c, load_kernel
    monkeypatch.setattr(gpu_tier, "gpu_available", lambda: False)
    cells = kernel_cells(lab)
    if lab in NO_KERNEL:
        assert not cells, f"{lab} has a kernel exercise: take it out of NO_KERNEL"
        pytest.skip(f"{lab}: no kernel in the curriculum")
    if not cells:  # a lab in two parts (lab03_quantization, lab03b_low_bit) has its kernel exercise in one of them
        parts = [other for other in LABS if lab_number(other)[:2] == lab_number(lab)[:2]]
        assert len(parts) > 1 and any(kernel_cells(other) for other in parts), f"{lab} has no kernel exercise"
        pytest.skip(f"{lab}: the kernel exercise is in the lab's other part")
    for cell in cells:
        assert C_STUB.search(cell.source), "the kernel's work is a `// YOUR CODE HERE` comment"
        namespace = {}
        exec(cell.source, namespace)  # the cell only assigns the source string
        var = SRC_ASSIGNMENT.search(cell.source)["var"]
        assert isinstance(namespace.get(var), str), f"{var} is not defined by the blank cell"
        source = namespace[var]
        if "__global__" in source:
            kernel = load_kernel(source, KERNEL_NAME.search(source)[1])
        else:   # C (Lab 06): the function whose body is the stub, compiled by the C tier
            kernel = load_c(source, C_STUB.search(source)["name"])
        assert kernel.library("fast").exists()


def test_teach_source_python_and_cuda():
    py = ("def outer(x):\n    \"\"\"Doc with a ''' inside.\"\"\"\n    def inner():\n        # YOUR CODE HERE\n"
          "        raise NotImplementedError()\n    # YOUR CODE HERE\n    raise NotImplementedError()\n")
    out = teach_source(py, "§2 Title (with parens)")
    assert out.count("# YOUR CODE HERE") == 2
    assert '        raise NotImplementedError("inner (§2 Title (with parens)): replace this line with your code")' in out
    assert '    raise NotImplementedError("outer (§2 Title (with parens)): replace this line with your code")' in out
    compile(out, "cell", "exec")
    cu = ('K_SRC = r"""\nextern "C" __global__ void k(float* y) {\n    int t = threadIdx.x;\n    # YOUR CODE HERE\n'
          '    raise NotImplementedError()\n}\n"""\n')
    out = teach_source(cu, "§8 Kernels")
    assert "NotImplementedError" not in out and "# YOUR CODE HERE" not in out
    assert ("\n    // YOUR CODE HERE (k, §8 Kernels): the kernel compiles as given; its tests fail until you write it\n}"
            in out)
    c = ('C_SRC = r"""\nstatic inline float twice(float v) { return 2 * v; }\nstatic void fill(float* y, int n) {\n'
         '  # YOUR CODE HERE\n  raise NotImplementedError()\n}\n"""\n')
    assert ("\n  // YOUR CODE HERE (fill, §6 Loops): the kernel compiles as given; its tests fail until you write it\n}"
            in teach_source(c, "§6 Loops"))
    top = teach_source("x = 1\n# YOUR CODE HERE\nraise NotImplementedError()", "§1 A", fallback="cell_id")
    assert top.endswith('raise NotImplementedError("cell_id (§1 A): replace this line with your code")')


def test_teach_stubs_updates_checksums_and_sections():
    meta = {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3, "solution": True, "task": False}
    cell = nbformat.v4.new_code_cell("def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()",
                                     metadata={"nbgrader": dict(meta)})
    cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Intro\n\n## 3. Third part\ntext"), cell])
    teach_stubs(nb)
    assert '"f (§3 Third part): replace' in cell.source
    assert cell.metadata.nbgrader["checksum"] == compute_checksum(cell)


def test_mutation_regions_accept_c_comment_markers():
    src = "X = r'''\nvoid k() {\n    int t = 0;\n    // ### BEGIN SOLUTION\n    t += 1;\n    // ### END SOLUTION\n}\n'''"
    assert SOLUTION_REGION.search(src)["indent"] == "    "
    assert mutate(src, "t -= 1;") == "X = r'''\nvoid k() {\n    int t = 0;\n    t -= 1;\n}\n'''"


def test_a_mutant_may_be_an_edit_of_the_answer():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y * 2\n    ### END SOLUTION\n"
    assert mutate(src, ("x + 1", "x - 1")) == src.replace("x + 1", "x - 1")
    assert mutate(src, [("x + 1", "x"), ("y * 2", "y * 3")]) == src.replace("x + 1", "x").replace("y * 2", "y * 3")
    for missing in (("x + 2", "x"), ("y", "z")):   # absent, or found more than once: the edit is ambiguous
        with pytest.raises(ValueError, match="expected .* once in the solution"):
            mutate(src, missing)
    with pytest.raises(ValueError, match="once in the solution"):
        mutate("a = 1\n" + src, ("a = 1", "a = 2"))   # outside the solution region
