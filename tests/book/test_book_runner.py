"""The papermill runner of the book: clear errors for wrong parameters and failing cells."""
from __future__ import annotations

import re

import nbformat
import pytest

from h3r.book import runner as nb
from h3r.book.__main__ import main
from h3r.profiles import ParameterError
from tests.nbval_tolerance import TAG as LEARNED_TAG


def test_every_book_notebook_has_one_parameters_cell_with_a_profile():
    stems = nb.toc_notebooks()
    assert stems, "the book lists no notebook"
    for stem in stems:
        notebook = nbformat.read(nb.NOTEBOOKS / f"{stem}.ipynb", as_version=4)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{stem}: {len(tagged)} cells tagged 'parameters'"
        assert 'profile = "smoke"' in tagged[0].source, f"{stem}: stored default profile must be smoke (nbval)"


def _notebook(tmp_path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_code_cell(src) for src in sources]
    cells[0].metadata["tags"] = ["parameters"]
    notebook.cells = cells
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    return path


def test_unknown_papermill_parameter_is_refused(tmp_path):
    path = _notebook(tmp_path, 'profile = "smoke"', "x = 1")
    with pytest.raises(ParameterError, match=r"has no parameter 'strides'; its parameters are profile"):
        nb.execute(path, tmp_path / "out.ipynb", {"profile": "smoke", "strides": [1]}, progress=False)


def test_failing_cell_is_named(tmp_path):
    path = _notebook(tmp_path, 'profile = "smoke"', "x = 1", "raise ValueError('boom')")
    with pytest.raises(nb.NotebookFailed) as err:
        nb.execute(path, tmp_path / "out.ipynb", {"profile": "smoke"}, progress=False)
    assert "probe.ipynb" in str(err.value) and "ValueError: boom" in str(err.value)
    assert err.value.cell is not None and (tmp_path / "out.ipynb").is_file()


def test_cli_reports_errors_without_a_traceback(capsys):
    assert main(["execute", "01_quantization_error", "--profile", "smoke", "-p", "no_such", "1"]) == 1
    assert "has no parameter 'no_such'" in capsys.readouterr().err


def test_book_parameters_go_to_the_chapters_that_declare_them(tmp_path):
    with pytest.raises(ParameterError, match=r"no notebook of the book has the parameter\(s\) \['colour'\]"):
        nb.build(parameters={"colour": "red"}, out=tmp_path)
    declared = {s: nb.declared_parameters(nb.NOTEBOOKS / f"{s}.ipynb") for s in nb.toc_notebooks()}
    assert any("data_root" in d for d in declared.values()) and not all("data_root" in d for d in declared.values())


#: the Jupyter Book tags that hide a cell's input or output
BOOK_TAGS = {"remove-cell", "remove-input", "remove-output", "hide-input", "hide-output", "hide-cell"}


def test_nbval_markers_are_ones_nbval_reads():
    """nbval reads a ``# NBVAL_...`` comment only when it is the whole line (a marker with a
    trailing remark is silently ignored, so the cell is compared after all); the notebooks use
    cell tags instead, and no comment that looks like a marker."""
    from nbval.plugin import metadata_tags

    for path in sorted(nb.NOTEBOOKS.glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            lines = [line.strip() for line in cell.source.splitlines()] if cell.cell_type == "code" else []
            assert not [line for line in lines if line.lstrip("# ").startswith("NBVAL")], (path.name, i)
            tags = set(cell.metadata.get("tags", [])) - {"parameters", "injected-parameters", LEARNED_TAG} - BOOK_TAGS
            assert tags <= set(metadata_tags), (path.name, i)


def test_executed_notebooks_store_paths_relative_to_the_repository(tmp_path):
    path = _notebook(tmp_path, 'profile = "smoke"', "x = 1")
    out = nb.REPO / "_build" / "test-portable" / "out.ipynb"
    nb.execute(path, out, {"profile": "smoke"}, progress=False)
    meta = nbformat.read(out, as_version=4).metadata["papermill"]
    assert meta["output_path"] == "_build/test-portable/out.ipynb"
    assert meta["input_path"] == "probe.ipynb"  # outside the repository: its name only
    injected = [c for c in nbformat.read(out, as_version=4).cells if "injected-parameters" in c.metadata["tags"]]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]


def test_code_lines_fit_the_page():
    """The book shows code in a column of about 88 characters: longer lines are cut off. Code
    cells are formatted to 88 (``ruff format --line-length 88``), fenced code in prose too."""
    too_long = []
    for path in sorted(nb.NOTEBOOKS.glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                lines = cell.source.splitlines()
            else:
                fences = cell.source.split("```")
                lines = [line for block in fences[1::2] for line in block.splitlines()[1:]]
            too_long += [f"{path.name} cell {i}: {line}" for line in lines if len(line) > 88]
    assert not too_long, "\n".join(too_long[:20])


#: the most non-blank code lines a chapter may hold: prose and one-line calls into h3r
MAX_CODE_LINES = 150


def test_notebooks_are_narrative_over_the_library():
    """No function or class is defined in a notebook (the library holds them, tested), no notebook
    moves its working folder itself (profiles.open_chapter does) or reads the profiles' table of
    settings (open_chapter resolves a chapter's once), and each holds at most :data:`MAX_CODE_LINES`
    code lines."""
    problems = []
    for path in sorted(nb.NOTEBOOKS.glob("*.ipynb")):
        code = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
        lines = [line for source in code for line in source.splitlines() if line.strip()]
        problems += [f"{path.name}: {line.strip()}" for line in lines
                     if re.match(r"\s*(async\s+)?(def|class)\s", line) or "chdir(" in line or "CHAPTERS" in line]
        if len(lines) > MAX_CODE_LINES:
            problems.append(f"{path.name}: {len(lines)} code lines (at most {MAX_CODE_LINES})")
    assert not problems, "\n".join(problems)


def test_the_build_measurement_reads_as_minutes_and_a_sentence(tmp_path):
    assert nb.read_measurement(tmp_path / "none.json") is None
    run = {"venv_seconds": 120.0, "notebook_seconds": {"01_quantization_error": 90.0}, "render_seconds": 30.0,
           "total_seconds": 1830.0, "command": "make book",
           "provenance": {"commit": "abc1234", "device": "cpu (2 cores)", "time_utc": "2026-01-01T00:00:00Z",
                          "load_average": {"before": [0.5, 0.4, 0.3]}}}
    path = tmp_path / "make_book.json"
    path.write_text(__import__("json").dumps(run))
    assert nb.read_measurement(path) == run
    minutes = nb.measured_minutes(run)
    assert list(minutes.columns) == ["minutes"]
    assert minutes["minutes"].to_dict() == {"make venv": 2.0, "notebooks/01_quantization_error": 1.5,
                                            "rendering (Jupyter Book)": 0.5}
    assert nb.measurement_text(run) == (
        "**30.5 minutes** in all (make book). Measured at commit `abc1234` on cpu (2 cores), "
        "2026-01-01T00:00:00Z; load average before 0.5.")
