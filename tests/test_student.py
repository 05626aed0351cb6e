"""tinyml_lib.student (export outside a workspace, bad input) and tinyml_lib.hints (the hint after an unfinished
exercise), in a real IPython shell."""
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tinyml_lib import hints, student


def test_export_outside_a_workspace_exports_nothing_and_says_so(capsys):
    assert not student.in_workspace()
    assert student.export_lab("lab01_metrics") == {"exported": [], "unfinished": []}
    assert "not a student workspace" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["lab1", "../lab01_metrics", 3, None])
def test_export_rejects_a_bad_lab_name(bad):
    with pytest.raises(ValueError, match="expected a lab name like 'lab01_metrics'"):
        student.export_lab(bad)


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    registered = hints.register(sh, str(ROOT / "labs" / "lab01_metrics" / "lab01_metrics.ipynb"))
    yield sh
    sh.events.unregister("post_run_cell", registered.post_run_cell)
    InteractiveShell.clear_instance()


def test_a_failure_after_an_unfinished_exercise_names_it(shell, capsys):
    shell.run_cell('def count_params(model):\n    # YOUR CODE HERE\n'
                   '    raise NotImplementedError("count_params (§1 Parameters and model size): replace this line")\n')
    shell.run_cell("sizes = {}\nsizes['vgg'] = count_params(None)")
    assert "hint:" not in capsys.readouterr().out, "the cell that stops at the exercise names it itself"
    shell.run_cell("sizes['vgg']")                       # KeyError: the dict the exercise should have filled
    out = capsys.readouterr().out
    assert "hint:" in out and "finish `count_params` (§1 Parameters and model size) first" in out
    shell.run_cell("def count_params(model):\n    return 0\n")
    shell.run_cell("sizes['vgg']")                       # still a KeyError, but the exercise is done now
    assert "hint:" not in capsys.readouterr().out


def test_a_section_title_with_brackets_is_kept_whole():
    for message in ("nm_mask (§4 N:M structured sparsity (2:4)): replace this line with your code",
                    "nm_mask (Lab 02 §4 N:M structured sparsity (2:4)) is not in your library yet: finish it"):
        assert hints.unfinished_from(NotImplementedError(message))[1].endswith("§4 N:M structured sparsity (2:4)")


def test_no_hint_without_an_unfinished_exercise(shell, capsys):
    shell.run_cell("{}['x']")
    shell.run_cell("raise NotImplementedError('a plain one')")
    shell.run_cell("undefined_name")
    assert "hint:" not in capsys.readouterr().out


def test_a_name_an_exercise_defines_says_which_cell_to_run(shell, capsys):
    shell.run_cell("count_params(None)")
    assert "hint: `count_params` is defined by the exercise cell of §1 Parameters and model size" in capsys.readouterr().out
    shell.run_cell("REDUCE_TREE_SRC")
    assert "exercise cell of §8" in capsys.readouterr().out
