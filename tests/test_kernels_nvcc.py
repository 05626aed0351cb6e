"""Every kernels/*.cu compiles with nvcc for sm_80 and sm_90 (skipped where nvcc is not on PATH)."""
import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = sorted((Path(__file__).resolve().parent.parent / "kernels").glob("*.cu"))


def test_kernel_files_exist():
    assert {p.name for p in KERNELS} >= {"reduction.cu", "sgemm.cu"}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("path", KERNELS, ids=lambda p: p.name)
def test_nvcc_compiles(path, arch, tmp_path):
    proc = subprocess.run(["nvcc", f"-arch={arch}", "--ptx", "-std=c++17", str(path), "-o", str(tmp_path / "k.ptx")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
