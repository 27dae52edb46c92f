"""Shared fixtures: every test gets its own cache and runs folder; `mirror` skips without the data mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from colorlab import settings


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Point COLORLAB_CACHE and COLORLAB_RUNS at a fresh folder so no test touches the developer's cache."""
    root = tmp_path_factory.mktemp("colorlab")
    monkeypatch.setenv("COLORLAB_CACHE", str(root / "cache"))
    monkeypatch.setenv("COLORLAB_RUNS", str(root / "runs"))


@pytest.fixture
def mirror():
    """`mirror(name) -> Path`: a dataset's folder in the local data mirror; skips the test when it is absent.

    The mirror is `settings.data_dir()` (COLORLAB_DATA; CI sets it to ../shared/data).
    """

    def need(name: str) -> Path:
        from colorlab.data import registry

        ds = registry.get(name)
        root = settings.data_dir() / ds.folder
        if not ds.present(root):
            pytest.skip(f"dataset {name!r} is not in the data mirror {settings.data_dir()} "
                        f"(set COLORLAB_DATA to the mirror, e.g. ../shared/data, or `make test DATA_DIR=...`)")
        return root

    return need


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second thread only adds contention on a shared machine (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
