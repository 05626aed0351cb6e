"""Feedback pages (autograders/feedback.py): no hidden test, nothing a student wrote is live, no student breaks the run.

One run of nbgrader's GenerateFeedback, in this process with the course's nbgrader_config.py, on autograded copies
(classroom.save_grades) of the first section of lab01's solution notebook that carry what a hostile student's code
could leave in them (no kernel runs: the outputs are written in):

* hostile: every test cell printed its own source and displayed something (an IPython `pre_run_cell` hook does this),
  two failed with a message, and the student's last cell printed every test's source again; then HTML, SVG,
  JavaScript and Markdown outputs and a markdown cell, each with a script or handler payload;
* markers: nbgrader's marker text in an answer cell, a cell the student added and a markdown cell, and a markdown
  cell that shows an attachment it lacks (a student of its own, so that a failure there cannot hide the other page).
"""
from __future__ import annotations

import html
import io
import json
import logging
import re
from pathlib import Path

import nbformat
import nbgrader.api
import pytest
from alembic.script import ScriptDirectory
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbgrader.api import Gradebook
from nbgrader.converters import GenerateFeedback, NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbgrader.dbutil import ALEMBIC_DIR
from nbgrader.preprocessors import ComputeChecksums, SaveCells
from traitlets.config.loader import PyFileConfigLoader

from autograders.classroom import save_grades
from autograders.course import ROOT, lab_names
from autograders.feedback import HiddenTestsRedacted, InertMarkdown

LAB = "lab01_metrics"
FAILED_MESSAGE = "params of Linear(2, 2): expected 6, got 7"
LONG_MESSAGE = "x" * 5000
HOOK_MARK = "printed-by-the-student's-hook"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
MARKDOWN_PAYLOAD = """An answer with markup.

<script>alert('md-script')</script>

<img src=x onerror="alert('md-img')">

[click](javascript:alert('md-link'))

```mermaid
<img src=y onerror="alert('md-mermaid')">
```
"""
pytestmark = pytest.mark.skipif(LAB not in lab_names(), reason=f"{LAB} missing")


def solution():
    """The lab's first section (instructions, answers, visible and hidden tests): the whole lab takes 3x longer."""
    nb = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    section = next(i for i, c in enumerate(nb.cells) if i and c.cell_type == "markdown" and c.source.startswith("## 2"))
    nb.cells = nb.cells[:section]
    return nb


def is_grade(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


def hidden_lines(nb) -> list[str]:
    """The hidden tests' lines long enough not to occur by chance."""
    return [line.strip() for cell in nb.cells if is_grade(cell) for region in HIDDEN.findall(cell.source)
            for line in region.splitlines() if len(line.strip()) > 30]


def output(kind: str, **fields):
    return nbformat.v4.new_output(kind, **fields)


def hooked(nb):
    """Each test cell printed its source and displayed it; two failed; the last cell printed every test again."""
    tests = [cell for cell in nb.cells if is_grade(cell)]
    for cell in tests:
        cell.outputs = [output("stream", name="stdout", text=cell.source),
                        output("display_data", data={"text/plain": f"{HOOK_MARK}\n{cell.source}",
                                                     "text/html": f"<pre>{html.escape(cell.source)}</pre>"})]
    tests[0].outputs.append(output("execute_result", data={"text/plain": HOOK_MARK}, execution_count=1))
    tests[1].outputs.append(output("error", ename="AssertionError", evalue=FAILED_MESSAGE,
                                   traceback=["Traceback (most recent call last)", tests[1].source]))
    tests[2].outputs.append(output("error", ename="AssertionError", evalue=LONG_MESSAGE, traceback=[]))
    sources = [cell.source for cell in tests]
    nb.cells.append(nbformat.v4.new_code_cell("print(*SEEN, sep='\\n'); print(SEEN)", outputs=[
        output("stream", name="stdout", text="\n".join(sources) + "\n" + str(sources))]))
    return nb


def injector(nb):
    """Active content in a student's outputs and in a markdown cell the student added."""
    nb.cells.append(nbformat.v4.new_code_cell("show()", outputs=[
        output("display_data", data={"text/plain": "<IPython.core.display.HTML object>",
                                     "text/html": "<script>alert('html-script')</script>"
                                                  "<img src=x onerror=\"alert('html-img')\">"}),
        output("display_data", data={"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'>"
                                                      "<script>alert('svg-script')</script></svg>"}),
        output("display_data", data={"application/javascript": "alert('js-output')"}),
        output("execute_result", execution_count=2,
               data={"text/markdown": "[md](javascript:alert('md-output'))", "text/plain": "plain md"}),
    ]))
    nb.cells.append(nbformat.v4.new_markdown_cell(MARKDOWN_PAYLOAD))
    return nb


def markers(nb):
    """nbgrader's marker text where a student may write anything, and a picture that cannot be rendered."""
    answer = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
    answer.source += "\n# ### BEGIN HIDDEN TESTS (unmatched, in a comment)"
    nb.cells.append(nbformat.v4.new_code_cell('NOTE = """\n### BEGIN HIDDEN TESTS\nmine\n### END HIDDEN TESTS\n"""'))
    nb.cells.append(nbformat.v4.new_markdown_cell("### BEGIN SOLUTION and ### END SOLUTION, as I read them"))
    nb.cells.append(nbformat.v4.new_markdown_cell("![a picture I did not attach](attachment:plot.png)"))
    return nb


def register_lab(grading: Path) -> None:
    """A gradebook with the lab's cells, as `nbgrader generate_assignment` records them (in this process)."""
    resources = {"nbgrader": {"db_url": f"sqlite:///{grading / 'gradebook.db'}", "assignment": LAB, "notebook": LAB}}
    with pytest.MonkeyPatch.context() as env:  # a new gradebook runs the `alembic` command for the schema's version
        env.setattr(nbgrader.api, "get_alembic_version", ScriptDirectory(ALEMBIC_DIR).get_current_head)
        with Gradebook(resources["nbgrader"]["db_url"]) as gb:
            gb.update_or_create_assignment(LAB)
    nb, resources = ComputeChecksums().preprocess(solution(), resources)
    SaveCells().preprocess(nb, resources)


def generate_feedback(grading: Path) -> str | None:
    """nbgrader's GenerateFeedback with the course's nbgrader_config.py, in this process; the error, if it failed."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TINYML_GRADING_DIR", str(grading))
        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = LAB
    converter = GenerateFeedback(coursedir=coursedir, config=config)
    converter.force = True
    logs = io.StringIO()
    converter.log.addHandler(logging.StreamHandler(logs))
    try:
        converter.start()
    except NbGraderException:
        return logs.getvalue()
    return None


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    """student -> (raw HTML of the feedback page or None, its text); and the error of the run, if it failed."""
    grading = tmp_path_factory.mktemp("feedback")
    register_lab(grading)
    students = {"hostile": lambda nb: injector(hooked(nb)), "markers": markers}
    for student, make in students.items():
        save_grades(LAB, student, make(solution()), grading)
    error = generate_feedback(grading)
    pages = {}
    for student in students:
        path = grading / "feedback" / student / LAB / f"{LAB}.html"
        page = path.read_text() if path.exists() else None
        pages[student] = (page, page and html.unescape(re.sub(r"<[^>]+>", "", page)))
    return pages, error


def page_of(feedback, student) -> tuple[str, str]:
    pages, error = feedback
    page, text = pages[student]
    assert page is not None, f"no feedback for {student}:\n{(error or '')[-3000:]}"
    return page, text


def live_content(page: str) -> list[str]:
    """Elements of the page that would run a student's payload: scripts, handlers, javascript: URLs, SVG."""
    found = []
    for tag in BeautifulSoup(page, "html.parser").find_all(True):
        if tag.name == "script" and "alert(" in tag.get_text():
            found.append(str(tag)[:120])
        if tag.name in ("svg", "iframe", "object", "embed"):
            found.append(tag.name)
        for name, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            if name.startswith("on") or re.sub(r"\s", "", value).lower().startswith(("javascript:", "data:image/svg")):
                found.append(f"<{tag.name} {name}={value[:80]!r}>")
    return found


def test_test_cells_show_pass_or_fail_and_no_hidden_test(feedback):
    page, text = page_of(feedback, "hostile")
    assert HOOK_MARK not in text, "a test cell's printed or displayed output reached the feedback"
    leaked = [line for line in hidden_lines(solution()) if line in text]
    assert not leaked, f"hidden tests leak into the feedback: {leaked[:3]}"
    assert "[hidden test]" in text, "the hidden tests printed by the student's last cell should be redacted there"
    assert f"AssertionError: {FAILED_MESSAGE}" in text, "a failed test shows its message"
    longest = max(len(m) for m in re.findall(r"x+", text))
    assert 100 < longest <= 500, f"a failed test's message is cut to 500 characters, got {longest}"


def test_student_html_svg_javascript_and_markdown_are_inert(feedback):
    page, text = page_of(feedback, "hostile")
    assert not live_content(page), f"live student content in the feedback: {live_content(page)}"
    for payload in ("<script>alert('html-script')", "<img src=x onerror", "alert('svg-script')", "alert('js-output')",
                    "javascript:alert('md-output')", "<script>alert('md-script')", "<img src=y onerror"):
        assert payload not in page, f"{payload} reached the feedback as markup"
    assert "<IPython.core.display.HTML object>" in text and "plain md" in text, "rich outputs keep their text/plain"
    assert "<script>alert('md-script')</script>" in text, "a student's raw HTML is shown as text"
    assert "An answer with markup." in text and ">click</a>" in page, "the student's Markdown still renders"


def test_marker_text_in_student_cells_does_not_break_feedback(feedback):
    _, error = feedback
    assert error is None, f"generate_feedback failed:\n{error[-3000:]}"
    page, text = page_of(feedback, "markers")
    assert "BEGIN\u00a0HIDDEN TESTS (unmatched, in a comment)" in text, "the student's comment is shown"
    leaked = [line for line in hidden_lines(solution()) if line in text]
    assert not leaked, f"the test cells' hidden tests are still removed, yet {leaked[:3]} is shown"
    assert "check_equal(count_params(nn.Linear(3, 4)), 3 * 4 + 4" in text, "the visible tests are shown"
    assert "![a picture I did not attach](attachment:plot.png)" in text, "a cell that cannot render shows its source"


def test_instructor_markdown_renders_as_before():
    """The instruction cells of every lab carry no nbgrader lock, so they take InertMarkdown's path: same page."""
    exporter, cells = HTMLExporter(), 0
    for lab in lab_names():
        for cell in nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            before = BeautifulSoup(exporter.markdown2html({"cell": cell}, cell.source), "html.parser")
            inert, _ = InertMarkdown().preprocess_cell(nbformat.from_dict(cell), {}, 0)
            after = BeautifulSoup(exporter.markdown2html({"cell": inert}, inert.source), "html.parser")
            after.find("div", class_="inert-markdown").unwrap()
            assert str(after).strip() == str(before).strip(), f"{lab}: {cell.source[:80]!r} renders differently"
            cells += 1
    assert cells > 0


def test_only_locked_markdown_with_a_grade_id_keeps_its_html():
    """merge_submission restores a cell with a grade_id from the release; `locked` alone is the student's say-so."""
    markup = "<b>bold</b> <img src=x onerror=alert(1)>"
    locked = nbformat.v4.new_markdown_cell(markup, metadata={"nbgrader": {"locked": True, "grade_id": "intro"}})
    claimed = nbformat.v4.new_markdown_cell(markup, metadata={"nbgrader": {"locked": True}})
    assert InertMarkdown().preprocess_cell(locked, {}, 0)[0].source == markup
    assert "<img" not in InertMarkdown().preprocess_cell(claimed, {}, 0)[0].source


def test_hidden_lines_are_cut_from_later_outputs_printed_or_quoted():
    """A hidden line with quotes and a backslash, printed as is, in a list's repr and in JSON: cut all three times."""
    hidden = """check(f('it\\'s'), "a \\\\ b", hint="quotes of both kinds")"""
    test = nbformat.v4.new_code_cell(f"check(f(1), 1)\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS",
                                     metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1}})
    printed = [hidden, repr([hidden]), json.dumps({"seen": hidden})]
    later = nbformat.v4.new_code_cell("print(SEEN)", outputs=[output("stream", name="stdout", text=text)
                                                              for text in printed])
    nb, _ = HiddenTestsRedacted().preprocess(nbformat.v4.new_notebook(cells=[test, later]), {})
    assert [o.text.count("[hidden test]") for o in nb.cells[1].outputs] == [1, 1, 1], nb.cells[1].outputs
