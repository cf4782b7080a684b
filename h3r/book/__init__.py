"""Book tooling, not library: the runner that builds the Jupyter Book from the notebooks, and the
check that looks at the rendered pages.

    python -m h3r.book build --profile cpu        # execute every notebook of the book, render it
    python -m h3r.book execute --profile smoke --in-place   # refresh the stored outputs (nbval)
    python -m h3r.book check                      # screenshots, formulas, images, page weight

``runner``  papermill execution under a profile (:mod:`h3r.profiles`), staging, Jupyter Book 1.x
``check``   headless Chromium over the built HTML
"""
from h3r._extras import require

require("book", "the book tooling (h3r.book)")
