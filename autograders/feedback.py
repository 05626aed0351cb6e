"""Feedback that teaches without giving the tests away.

nbgrader's feedback is the autograded notebook rendered to HTML: the test cells with their hidden tests, and tracebacks
that quote the failing lines. These preprocessors run before it (nbgrader_config.py puts them first in
GenerateFeedback.preprocessors): hidden regions are removed from the test cells, and an error in a test cell is shown
as its message only ("AssertionError: params of a depthwise conv: expected 288, got 320"), which the course's checks
write to say what went wrong.
"""
from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class ErrorMessagesOnly(NbGraderPreprocessor):
    """In test cells, replace every traceback by its last line (exception type and message)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
