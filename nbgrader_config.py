"""nbgrader configuration: the repository is the course directory.

solutions/  -> nbgrader source (instructor notebooks with solutions and hidden tests)
labs/       -> nbgrader release (student notebooks, generated, committed)
grading/    -> submissions, autograded copies, feedback and the gradebook (git-ignored)
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # autograders.feedback, below
WORK = Path(os.environ.get("TINYML_GRADING_DIR", ROOT / "grading"))

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "tinyml"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
# nbgrader joins these to the root; absolute paths let a test or a class grading run use its own folder.
c.CourseDirectory.submitted_directory = str(WORK / "submitted")
c.CourseDirectory.autograded_directory = str(WORK / "autograded")
c.CourseDirectory.feedback_directory = str(WORK / "feedback")
c.CourseDirectory.db_url = f"sqlite:///{WORK / 'gradebook.db'}"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# Only the notebook is released; lab data come from tinyml_lib and data/.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearOutput.enabled = True

# A cell that runs longer than this is interrupted and scores zero; the rest of the notebook goes on.
c.Execute.timeout = int(os.environ.get("TINYML_CELL_TIMEOUT", "120"))
c.Execute.interrupt_on_timeout = True
c.ExecutePreprocessor.kernel_name = "python3"
c.Execute.kernel_name = "python3"

# Feedback shows the student what failed, not the hidden tests, and shows what the student wrote as inert text
# (autograders/feedback.py). Order matters: the redaction reads the hidden tests and the markers are neutralised before
# ClearHiddenTests removes the hidden tests (it raises on a marker outside a test cell); the test cells are reduced to
# their error messages and the outputs and markdown made inert before the page is rendered; GetGrades and the CSS last.
c.GenerateFeedback.preprocessors = [
    "autograders.feedback.HiddenTestsRedacted",
    "autograders.feedback.MarkersNeutralised",
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograders.feedback.ErrorMessagesOnly",
    "autograders.feedback.PlainOutputs",
    "autograders.feedback.InertMarkdown",
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
