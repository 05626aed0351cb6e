"""Build step of the single-source rule: graded functions live in solution cells; this writes them into tinyml_lib.

A code cell in `solutions/*/*.ipynb` whose first line is `# export -> tinyml_lib/<module>.py` is copied, in notebook
order, into that module, with the nbgrader solution markers removed. Later labs import the instructor's version from
the library, so a student who failed one lab can still do the next.

A line `# library: <code>` is a comment in the notebook and `<code>` in the module. It is how a module imports a
function that an earlier cell of the same lab defines (`# library: from tinyml_lib.pruning import kept_widths`):
running that import in the notebook would replace the student's own function with the library's, which is a stub
while the lab is not due (student bundle, class grading).

    python -m tinyml_lib.export           # write the modules
    python -m tinyml_lib.export --check   # exit 1 if a committed module differs from the notebooks
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPORT_LINE = re.compile(r"^# export -> tinyml_lib/(?P<path>[\w/]+\.py)\s*$")
MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}
LIBRARY_ONLY = re.compile(r"^(?P<indent>\s*)# library: (?P<code>.*)$")
HEADING = re.compile(r"^## (?P<number>\d+)\.\s*(?P<title>.+)$", re.M)
LAB_NAME = re.compile(r"lab(?P<number>\d\d[a-z]?)_\w+")  # lab01_metrics; a lab in two parts: lab03_..., lab03b_...


def exported_cells(notebook: Path) -> list[tuple[str, str]]:
    """(module path relative to tinyml_lib, cell body without the export line and solution markers) per export cell."""
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        match = EXPORT_LINE.match(lines[0]) if lines else None
        if match:
            body = [LIBRARY_ONLY.sub(r"\g<indent>\g<code>", line) for line in lines[1:] if line.strip() not in MARKERS]
            found.append((match["path"], "\n".join(body).strip() + "\n"))
    return found


def sectioned(cells):
    """(section, cell) for every cell: the section is the last `## N. Title` heading at or above it ("§1 Title")."""
    section = "(introduction)"
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for match in HEADING.finditer("".join(cell["source"])):
                section = f"§{match['number']} {match['title'].strip()}"
        yield section, cell


def exported_functions(notebook: Path) -> dict[str, str]:
    """Every function an export cell of `notebook` defines -> its section, e.g. {"count_params": "§1 Parameters"}."""
    found = {}
    for section, cell in sectioned(json.loads(Path(notebook).read_text())["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and EXPORT_LINE.match(source.split("\n", 1)[0]):
            clean = "\n".join(line for line in source.splitlines() if "### " not in line)
            for node in ast.parse(clean).body:
                if isinstance(node, ast.FunctionDef):
                    found.setdefault(node.name, section)
    return found


def lab_number(lab: str) -> str:
    """The number of a lab as its title gives it: "lab01_metrics" -> "01", "lab03b_low_bit" -> "03b"."""
    match = LAB_NAME.fullmatch(lab)
    if not match:
        raise ValueError(f"expected a lab name like 'lab01_metrics' or 'lab03b_low_bit', got {lab!r}")
    return match["number"]


def stub_message(name: str, lab: str | None, section: str = "") -> str:
    """What a stub of a library function says: which lab and section teach it, and how to get it."""
    if lab is None:
        return f"{name} is part of a lab whose answers are not in this library"
    return (f"{name} (Lab {lab_number(lab)} {section}) is not in your library yet: finish it in {lab}/{lab}.ipynb "
            f"and run that lab's export cell (tinyml_lib.student.export_lab), or use the reference with "
            f"`make reveal LAB={lab}` once you may see it")


def stub_function(node: ast.FunctionDef, message: str) -> ast.FunctionDef:
    """The same function with its docstring kept and its body replaced by `raise NotImplementedError(message)`."""
    stub = copy.copy(node)
    stub.body = ([node.body[0]] if ast.get_docstring(node) else []) + \
        [ast.parse(f"raise NotImplementedError({message!r})").body[0]]
    return stub


def stub_module(source: str, where: dict[str, tuple[str, str]], only: set[str] | None = None) -> str:
    """`source` with the top-level functions (all, or those in `only`) stubbed; everything else kept as written.

    `where` maps a function name to (lab, section) for its message."""
    lines = source.splitlines()
    nodes = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and (only is None or n.name in only)]
    for node in reversed(nodes):  # from the bottom up, so the line numbers above stay valid
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        stub = ast.unparse(ast.fix_missing_locations(stub_function(node, stub_message(node.name, *where.get(node.name, (None,))))))
        lines[start:node.end_lineno] = stub.splitlines()
    return "\n".join(lines) + "\n"


def render_modules(root: Path = ROOT) -> dict[Path, str]:
    """Text of every generated module, keyed by its path, from all solution notebooks in name order."""
    chunks: dict[str, list[str]] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)
    for notebook in sorted((root / "solutions").glob("*/*.ipynb")):
        for rel, body in exported_cells(notebook):
            chunks[rel].append(body)
            rel_nb = notebook.relative_to(root).as_posix()
            if rel_nb not in sources[rel]:
                sources[rel].append(rel_nb)
    modules = {}
    for rel, bodies in chunks.items():
        header = (f"# Generated by `make library` from {', '.join(sources[rel])}.\n"
                  "# Do not edit: change the solution cell in the notebook and regenerate.\n")
        modules[root / "tinyml_lib" / rel] = header + "\n\n".join(bodies)
    return modules


def stale_modules(root: Path = ROOT) -> list[Path]:
    """Generated modules whose committed text differs from what the notebooks produce."""
    return [path for path, text in render_modules(root).items()
            if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report modules that differ from the notebooks")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_modules()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} differs from the solution notebooks; run `make library`")
        return 1 if stale else 0
    for path, text in render_modules().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
