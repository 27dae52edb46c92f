"""Notebook 07's interactive page (ipywidgets, JupyterLab): photo, methods, optional style photo.

Everything it computes comes from `colorlab.playground`; this module only lays
out the controls and draws the comparison below them.
"""

from __future__ import annotations

import html
from typing import Mapping

import numpy as np
import pandas as pd

from colorlab.playground import (BASELINES, MAX_SIDE, METHOD_ERRORS, Method, add_uploads, compare,
                                 style_transfer)


def _message(text: str, error: bool = False) -> str:
    colour = "#b00020" if error else "#333"
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"


def build_ui(methods: Mapping[str, Method], photos: Mapping[str, np.ndarray], selected: list[str] | None = None,
             max_side: int | None = MAX_SIDE):
    """The "try it yourself" page (JupyterLab): photo (gallery or upload), methods, optional style photo.

    Returns the ipywidgets layout; `Colorize` draws the comparison (and the style
    transfer, with a style photo) in the output area below. Problems (a file that
    is not a photo, a method that fails) are written in red in the status line.
    """
    import ipywidgets as w

    photos = dict(photos)
    photo = w.Dropdown(options=list(photos), description="photo")
    upload = w.FileUpload(accept="image/*", multiple=True, description="upload")
    ticked = tuple(n for n in (selected or BASELINES) if n in methods)
    chosen = w.SelectMultiple(options=list(methods), value=ticked, rows=min(8, len(methods)), description="methods")
    restylers = [n for n, m in methods.items() if m.model_name == "iizuka2016"]
    style = w.Dropdown(options=["(none)", *photos], description="style from")
    style_method = w.Dropdown(options=restylers or ["(no Iizuka run)"], description="restyle with")
    button = w.Button(description="Colorize", button_style="primary")
    status = w.HTML()
    out = w.Output()

    def on_upload(change) -> None:
        added, errors = add_uploads(photos, change["new"], max_side)
        photo.options = list(photos)
        style.options = ["(none)", *photos]
        if added:
            photo.value = added[-1]
        status.value = "<br>".join([_message(f"added {n}") for n in added] + [_message(e, True) for e in errors])

    def on_click(_) -> None:
        status.value = _message("colourising ...")
        picked = {n: methods[n] for n in chosen.value}
        with out:
            out.clear_output(wait=True)
            try:
                show_comparison(picked, photo.value, photos[photo.value], style.value, photos.get(style.value),
                                methods.get(style_method.value))
                status.value = _message("done")
            except (*METHOD_ERRORS, KeyError) as err:
                status.value = _message(f"{type(err).__name__}: {err}", error=True)

    upload.observe(on_upload, names="value")
    button.on_click(on_click)
    controls = w.VBox([w.HBox([photo, upload]), chosen, w.HBox([style, style_method]), button, status])
    page = w.VBox([controls, out])
    page.controls = {"photo": photo, "upload": upload, "methods": chosen, "style": style,  # for tests and the curious
                     "style_method": style_method, "button": button, "status": status, "output": out}
    return page


def show_comparison(methods: Mapping[str, Method], name: str, rgb: np.ndarray, style_name: str | None = None,
                    style_rgb: np.ndarray | None = None, style_method: Method | None = None) -> pd.DataFrame:
    """What the page draws: the comparison figure and table, then the style transfer when asked."""
    from IPython.display import display

    if not methods:
        raise ValueError("pick at least one method")
    fig, table = compare(methods, rgb, name)
    import matplotlib.pyplot as plt  # after plots chose a backend for a headless machine

    display(fig)
    plt.close(fig)
    display(table.drop(columns="note") if not table["note"].any() else table)
    if style_rgb is not None and style_method is not None:
        fig, moved = style_transfer(style_method.model, rgb, {style_name: style_rgb})
        display(fig)
        plt.close(fig)
        display(moved)
    return table
