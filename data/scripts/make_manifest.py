"""Regenerate data/MANIFEST.json: size and sha256 of every shipped file, with its source and licence.

    python data/scripts/make_manifest.py

Checkpoint entries keep the training record that data/scripts/train_*.py store in data/checkpoints/<name>.json;
a data set's .csv keeps the record its script writes beside it (.json) under "record".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(DATA.parent))
from tinyml_lib.data.manifest import sha256_of  # noqa: E402

SOURCES = {  # folder -> (source, licence, command that restores a file)
    "fashion-mnist": ("Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), Zalando SE; files of Debian's dataset-fashion-mnist",
                      "MIT (Expat); see data/fashion-mnist/LICENSE", "git checkout -- data/{path}"),
    "austen": ("Jane Austen's novels, text from the R package janeaustenr (Debian r-cran-janeaustenr)",
               "public domain; see data/austen/LICENSE", "git checkout -- data/{path}"),
    "checkpoints": ("trained by this repository's data/scripts/train_cnn.py", "MIT (this repository)",
                    "python data/scripts/train_cnn.py {stem}"),
    "nas": ("made by this repository's data/scripts/make_subnet_dataset.py from checkpoints/supernet.pt",
            "MIT (this repository)", "python data/scripts/make_subnet_dataset.py"),
}


def entry(path: Path) -> dict:
    rel = path.relative_to(DATA).as_posix()
    source, licence, restore = SOURCES[rel.split("/")[0]]
    item = {"path": rel, "bytes": path.stat().st_size, "sha256": sha256_of(path), "source": source,
            "licence": licence, "restore": restore.format(path=rel, stem=path.stem)}
    record = path.with_suffix(".json")
    if path.suffix in (".pt", ".csv") and record.exists():
        key = "training" if path.suffix == ".pt" else "record"
        item[key] = json.loads(record.read_text())
        item["restore"] = item[key].get("command", item["restore"])
    return item


def main() -> None:
    files = sorted(p for folder in SOURCES for p in (DATA / folder).glob("*")
                   if p.is_file() and p.name != "LICENSE" and p.suffix != ".json")
    manifest = {"about": "Every shipped data file: source, licence, size and sha256 (checked on load).",
                "files": [entry(p) for p in files]}
    (DATA / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
