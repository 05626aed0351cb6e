"""Feedback that teaches without giving the tests away, and that shows what a student wrote as inert text.

nbgrader's feedback is the autograded notebook rendered to HTML. Only the instructor's cells in it can be trusted: the
test cells (merge_submission restores them, with their hidden tests, from the instructor's notebook) and the locked
cells. Everything else was written by the student, or printed by the student's code, which runs in the same kernel as
the tests and can watch them run (an IPython `pre_run_cell` hook sees every cell's source; `inspect.stack()` sees the
line of a test that calls the student's function). nbgrader_config.py runs these preprocessors, in this order, before
the page is rendered:

1. HiddenTestsRedacted: any line of a hidden test printed in any output is cut out of it.
2. MarkersNeutralised: nbgrader's marker strings ("### BEGIN HIDDEN TESTS", ...) in a cell that is not a test cell
   are altered so that nbgrader's ClearHiddenTests, which runs next and raises on a hidden-test region outside a test
   cell, cannot fail the feedback of the whole class over one student's comment.
3. (nbgrader's ClearHiddenTests removes the hidden tests from the test cells.)
4. ErrorMessagesOnly: a test cell shows pass or fail, and a failure as its one line ("AssertionError: params of a
   depthwise conv: expected 288, got 320"), which the course's checks write to say what went wrong; nothing the code
   under test printed or displayed there is shown.
5. PlainOutputs: outputs keep only text and raster images; HTML, JavaScript, SVG, Markdown, LaTeX and any other rich
   type are reduced to their text/plain.
6. InertMarkdown: a markdown cell that the instructor does not lock is rendered here, with its raw HTML escaped and
   the result sanitised, so that the page shows the student's markup as text while Markdown, math and images render.
"""
from __future__ import annotations

import html
import json
import re

import bleach
from bleach.css_sanitizer import CSSSanitizer
from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, List, Unicode

# ClearSolutions, ClearHiddenTests and ClearMarkScheme look for these in a cell's source.
NBGRADER_MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                    "BEGIN MARK SCHEME", "END MARK SCHEME"]

# What Markdown renders to (headings, lists, tables, code, links, images); the rest of the HTML is dropped.
MARKDOWN_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
                 "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
                 "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
MARKDOWN_ATTRIBUTES = {"*": ["class", "id", "title"], "a": ["href"], "img": ["src", "alt", "width", "height"],
                       "th": ["style"], "td": ["style"]}
# data: is left to mistune, which keeps only data:image/{gif,png,jpeg,webp} (an attachment) and drops the rest.
MARKDOWN_PROTOCOLS = {"http", "https", "mailto", "data"}
TABLE_ALIGNMENT = CSSSanitizer(allowed_css_properties=["text-align"])
# Every character mistune or a browser may take for a line break; see InertMarkdown.
LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    """A code cell nbgrader grades: the instructor's tests (merge_submission restores it from the instructor's copy)."""
    return cell.cell_type == "code" and bool(nbgrader_meta(cell).get("grade"))


def is_instructor_markdown(cell) -> bool:
    """A markdown cell locked by nbgrader. It needs a grade_id: merge_submission restores the cells that have one from
    the release and drops unknown ids, but keeps a student's cell whose metadata only says `locked`."""
    meta = nbgrader_meta(cell)
    return (cell.cell_type == "markdown" and bool(meta.get("grade_id")) and not meta.get("solution")
            and bool(meta.get("locked") or meta.get("grade") or meta.get("task")))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class HiddenTestsRedacted(NbGraderPreprocessor):
    """Cut every line of the test cells' hidden regions out of every output of the notebook.

    The test cells' own outputs are dropped later (ErrorMessagesOnly); this catches what the student's code recorded
    while a test ran and printed in a later cell, or put in an exception message. Lines shorter than `min_length`
    (a bare `else:`) are left alone. A line is also found as Python's repr or JSON writes it inside a string (a
    printed list of sources); what a student re-encodes otherwise (base64, one character a line) is not caught.
    """

    min_length = Integer(16, help="Hidden-test lines shorter than this (stripped) are not redacted").tag(config=True)
    replacement = Unicode("[hidden test]").tag(config=True)
    begin = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end = Unicode("END HIDDEN TESTS").tag(config=True)
    lines: list[str] = []  # what to cut, longest first; set per notebook by preprocess

    def preprocess(self, nb, resources):
        region = re.compile(rf"{re.escape(self.begin)}[^\n]*\n(.*?)\n[^\n]*{re.escape(self.end)}", re.S)
        lines = {line.strip() for cell in nb.cells if is_test_cell(cell)
                 for hidden in region.findall(cell.source) for line in hidden.splitlines()}
        quoted = {form for line in lines if len(line) >= self.min_length
                  for form in (line, repr(line)[1:-1], json.dumps(line)[1:-1])}
        self.lines = sorted(quoted, key=len, reverse=True)
        return super().preprocess(nb, resources)

    def redact(self, text):
        if not isinstance(text, str):
            return text
        for line in self.lines:
            text = text.replace(line, self.replacement)
        return text

    def preprocess_cell(self, cell, resources, index):
        if not self.lines:
            return cell, resources
        for output in cell.get("outputs", []):
            for key in ("text", "evalue"):
                if key in output:
                    output[key] = self.redact(output[key])
            if "traceback" in output:
                output.traceback = [self.redact(line) for line in output.traceback]
            for mime, value in output.get("data", {}).items():
                output.data[mime] = self.redact(value)
        return cell, resources


class MarkersNeutralised(NbGraderPreprocessor):
    """In every cell but the test cells, break nbgrader's marker strings (a no-break space for the first space).

    Runs before ClearHiddenTests, which raises on a hidden-test region in a cell that is not a test cell and so made
    `nbgrader generate_feedback` fail whenever one student wrote "### BEGIN HIDDEN TESTS" in a comment or a string.
    The text reads the same on the page.
    """

    markers = List(Unicode(), NBGRADER_MARKERS).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if not is_test_cell(cell):
            for marker in self.markers:
                cell.source = cell.source.replace(marker, marker.replace(" ", "\u00a0", 1))
        return cell, resources


class ErrorMessagesOnly(NbGraderPreprocessor):
    """A test cell shows pass or fail: an error as its last line `ename: evalue`, and no other output.

    What the code under test printed or displayed while a test ran (a hook can print the test's source) is dropped;
    the message is cut to `max_message` characters.
    """

    max_message = Integer(500, help="Longest exception message shown for a failed test").tag(config=True)
    max_name = Integer(100, help="Longest exception name shown for a failed test").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            cell.outputs = [output for output in cell.get("outputs", []) if output.output_type == "error"]
            for output in cell.outputs:
                output.ename = _cut(str(output.get("ename", "")), self.max_name)
                output.evalue = _cut(str(output.get("evalue", "")), self.max_message)
                output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class PlainOutputs(NbGraderPreprocessor):
    """Outputs keep only the mime types the page shows as inert text or raster image (text/plain, PNG, JPEG).

    An output with none of them is dropped. Output metadata loses `filenames` (an image URL of the student's
    choosing), and a prompt number that is not an integer is blanked.
    """

    kept = List(Unicode(), ["text/plain", "image/png", "image/jpeg"]).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if not isinstance(cell.get("execution_count"), int):
            cell.execution_count = None
        outputs = []
        for output in cell.get("outputs", []):
            if "data" in output:
                output.data = {k: v for k, v in output.data.items() if k in self.kept and isinstance(v, str)}
                output.get("metadata", {}).pop("filenames", None)
                if not output.data:
                    continue
            outputs.append(output)
        cell.outputs = outputs
        return cell, resources


class InertMarkdown(NbGraderPreprocessor):
    """Render a markdown cell the instructor does not lock with its raw HTML escaped, then sanitise the result.

    The cell is rendered as nbconvert renders markdown (same parser, math and anchor links), but with raw HTML escaped
    and harmful link protocols (javascript:, data: other than images) dropped; bleach then keeps only the tags that
    Markdown produces (a ```mermaid block, for one, is emitted unescaped). The cell's source becomes that HTML on one
    line inside a <div>: a Markdown HTML block, which the page's renderer passes through as it is (every line break is
    written as a character reference so that no blank line can end the block early).

    The course's instruction cells carry no nbgrader metadata (a student can edit them), so they take this path too;
    they contain no raw HTML, so they render as before (tests/test_feedback.py checks every lab). A locked cell is
    left to the page's renderer.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown" and not is_instructor_markdown(cell):
            one_line = LINE_BREAKS.sub(lambda m: f"&#{ord(m.group())};", self.render(cell))
            cell.source = f'<div class="inert-markdown">{one_line}</div>'
            cell.pop("attachments", None)
        return cell, resources

    @staticmethod
    def render(cell) -> str:
        """The cell's safe HTML; its source as text where it cannot be rendered (an attachment it lacks)."""
        renderer = IPythonRenderer(escape=True, allow_harmful_protocols=False, attachments=cell.get("attachments", {}))
        try:
            rendered = MarkdownWithMath(renderer=renderer).render(cell.source)
        except InvalidNotebook:
            return f"<pre>{html.escape(cell.source)}</pre>"
        return bleach.clean(rendered, tags=MARKDOWN_TAGS, attributes=MARKDOWN_ATTRIBUTES, protocols=MARKDOWN_PROTOCOLS,
                            strip=True, css_sanitizer=TABLE_ALIGNMENT)
