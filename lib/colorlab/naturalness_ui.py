"""Notebook 08's page (ipywidgets, JupyterLab): a viewer's name, one image at a time, "natural" / "not natural".

Everything it records and reports comes from `colorlab.naturalness`; this module
only lays out the controls. Each answer is on disk before the next image shows.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from colorlab import naturalness


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _message(text: str, error: bool = False) -> str:
    return f"<span style='color:{'#b00020' if error else '#333'}'>{html.escape(text)}</span>"


def build_ui(trials: Sequence[naturalness.Trial], path: str | Path, seed: int = 0, methods: Sequence[str] = ()):
    """The study page: type your name, press Start, answer each image; the next student types theirs and starts again.

    Each viewer gets their own order (`naturalness.sequence` of `seed` and the name). `Report` draws the table and
    figure of every answer in `path` so far (all sessions). Which method made an image is never shown.
    """
    import ipywidgets as w

    viewer = w.Text(placeholder="your name or number", description="viewer")
    start = w.Button(description="Start", button_style="primary")
    # a fixed display width: stretched to the cell's width the photo pushes the answer buttons off the screen
    image = w.Image(format="png", layout=w.Layout(width="384px", height="auto", object_fit="contain"))
    natural = w.Button(description="natural", button_style="success", disabled=True)
    unnatural = w.Button(description="not natural", button_style="danger", disabled=True)
    status = w.HTML(_message("Type your name and press Start. Use your gut feeling: is this a natural photo?"))
    report_button = w.Button(description="Report")
    out = w.Output()
    state: dict = {"session": None}

    def show() -> None:
        session = state["session"]
        done = session.done
        natural.disabled = unnatural.disabled = done
        if done:
            image.value = b""
            status.value = _message(f"Thank you, {session.viewer}: {len(session.trials)} answers saved to {path}. "
                                    "Next viewer: type your name and press Start.")
            return
        image.value = png_bytes(session.current.rgb)
        status.value = _message(f"{session.viewer}: image {session.position + 1} of {len(session.trials)}")

    def on_start(_) -> None:
        if not viewer.value.strip():
            status.value = _message("type your name (or a number) first", error=True)
            return
        state["session"] = naturalness.Session(path, naturalness.sequence(trials, seed, viewer.value.strip()),
                                               viewer.value, seed)
        show()

    def on_answer(value: bool):
        def click(_) -> None:
            session = state["session"]
            if session is None or session.done:
                return
            try:
                session.answer(value)
            except OSError as err:  # the answer is not on disk: say so and stay on this image
                status.value = _message(f"not saved ({err}); try again", error=True)
                return
            show()

        return click

    def on_report(_) -> None:
        with out:
            out.clear_output(wait=True)
            show_report(path, methods)

    start.on_click(on_start)
    natural.on_click(on_answer(True))
    unnatural.on_click(on_answer(False))
    report_button.on_click(on_report)
    page = w.VBox([w.HBox([viewer, start]), image, w.HBox([natural, unnatural]), status, report_button, out])
    page.controls = {"viewer": viewer, "start": start, "image": image, "natural": natural,  # for tests and the curious
                     "not_natural": unnatural, "status": status, "report": report_button, "output": out}
    page.state = state
    return page


def show_report(path: str | Path, methods: Sequence[str] = ()):
    """What `Report` draws: the line of counts, the table and the figure of every answer in `path`."""
    from IPython.display import display

    answers, skipped = naturalness.read_answers(path)
    print(naturalness.describe(answers, skipped, path))
    table = naturalness.report(answers, methods)
    fig = naturalness.figure(table, answers, skipped)
    import matplotlib.pyplot as plt  # after plots chose a backend for a headless machine

    display(table)
    display(fig)
    plt.close(fig)
    return table
