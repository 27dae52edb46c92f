"""`colorlab data fetch` and `verify` against an HTTP server on 127.0.0.1 that serves archives built here."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from colorlab import cli, data
from colorlab.data import fetch, registry, verify
from colorlab.data.registry import Dataset, Source

from test_data_registry import make_miniplaces, make_sun8


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests = []

    class Handler(_Quiet):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tar_of(folder: Path, out: Path, arcname: str = "") -> Path:
    with tarfile.open(out, "w:gz") as tf:
        for p in sorted(folder.iterdir()):
            tf.add(p, arcname=f"{arcname}{p.name}")
    return out


def _evil_tar(out: Path, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
    with tarfile.open(out, "w:gz") as tf:
        ok = tarfile.TarInfo("images/train/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(payload) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(payload) if payload else None)
    return out


@pytest.fixture
def tiny_places(tmp_path, server):
    """A MiniPlaces-shaped entry whose tarball and dev kit the local server serves, all digests pinned."""
    www, url, _ = server
    src = make_miniplaces(tmp_path / "src")
    payload = tmp_path / "payload"
    payload.mkdir()
    (src / "images").rename(payload / "images")
    (src / "objects").rename(payload / "objects")
    tarball = _tar_of(payload, www / "data.tar.gz")
    sources = [Source(f"{url}/data.tar.gz", _sha(tarball))]
    for name in ("categories.txt", "object_categories.txt", "train.txt", "val.txt"):
        (www / name).write_bytes((src / name).read_bytes())
        sources.append(Source(f"{url}/{name}", _sha(www / name), name))
    return replace(registry.get("miniplaces"), sources=tuple(sources), tree_sha256=None)


def _nothing_left(dest: Path, folder: str = "miniplaces") -> bool:
    return not (dest / folder).exists() and not list(dest.glob(f".{folder}.fetch-*"))


def test_fetch_success_lays_out_the_original_layout(tiny_places, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    logs = []
    out = fetch.fetch_dataset(tiny_places, dest, progress=False, timeout=10, log=logs.append)
    assert out == dest / "miniplaces" and (out / "categories.txt").is_file()
    assert (out / "images/train/a/abbey/00000001.jpg").is_file() and (out / "objects/train/a/abbey/00000001.xml").is_file()
    assert list(dest.iterdir()) == [out]  # no staging folder left
    monkeypatch.setenv("COLORLAB_DATA", str(dest))
    assert len(data.samples("miniplaces", "train")) == 4 and data.class_names("miniplaces")[1] == "bakery/shop"
    assert fetch.fetch_dataset(tiny_places, dest, progress=False, log=logs.append) == out
    assert "already" in logs[-1]


def test_checksum_mismatch_leaves_nothing_behind(tiny_places, tmp_path):
    bad = replace(tiny_places, sources=(replace(tiny_places.sources[0], sha256="0" * 64), *tiny_places.sources[1:]))
    dest = tmp_path / "data"
    with pytest.raises(fetch.FetchError, match="checksum mismatch.*data.tar.gz"):
        fetch.fetch_dataset(bad, dest, progress=False, timeout=10)
    assert _nothing_left(dest)


def test_http_404_is_a_clear_error(tiny_places, tmp_path, server):
    _, url, _ = server
    missing = replace(tiny_places, sources=(Source(f"{url}/nope.tar.gz", "0" * 64),))
    with pytest.raises(fetch.FetchError, match=r"nope\.tar\.gz failed: HTTP 404"):
        fetch.fetch_dataset(missing, tmp_path / "data", progress=False, timeout=10)
    assert _nothing_left(tmp_path / "data")


def test_unreachable_server_is_a_clear_error(tiny_places, tmp_path):
    closed = replace(tiny_places, sources=(Source("http://127.0.0.1:9/x.tar.gz", "0" * 64),))
    with pytest.raises(fetch.FetchError, match="could not download .*COLORLAB_DATA"):
        fetch.fetch_dataset(closed, tmp_path / "data", progress=False, timeout=5)


def test_unverified_source_is_refused_before_downloading(tiny_places, tmp_path, server):
    _, _, requests = server
    unpinned = replace(tiny_places, sources=(replace(tiny_places.sources[0], sha256=None), *tiny_places.sources[1:]))
    with pytest.raises(fetch.FetchError, match="--allow-unverified"):
        fetch.fetch_dataset(unpinned, tmp_path / "data", progress=False, timeout=10)
    assert requests == [] and _nothing_left(tmp_path / "data")
    logs = []
    fetch.fetch_dataset(unpinned, tmp_path / "data", allow_unverified=True, progress=False, timeout=10, log=logs.append)
    assert any(tiny_places.sources[0].sha256 in line and "unverified" in line for line in logs)


@pytest.mark.parametrize("member, payload, problem", [
    (tarfile.TarInfo("../evil.txt"), b"x", "climbs out"),
    (tarfile.TarInfo("images/../../evil.txt"), b"x", "climbs out"),
    (tarfile.TarInfo("/tmp/evil.txt"), b"x", "absolute path"),
])
def test_path_traversal_archive_is_rejected(tmp_path, server, member, payload, problem):
    www, url, _ = server
    archive = _evil_tar(www / "evil.tar.gz", member, payload)
    ds = replace(registry.get("miniplaces"), sources=(Source(f"{url}/evil.tar.gz", _sha(archive)),))
    dest = tmp_path / "data"
    with pytest.raises(fetch.UnsafeArchiveError, match=problem):
        fetch.fetch_dataset(ds, dest, progress=False, timeout=10)
    assert _nothing_left(dest) and not (tmp_path / "evil.txt").exists() and not (dest.parent / "evil.txt").exists()


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, problem", [
    (_link("images/train/escape", "../../../outside"), "symlink .* points outside"),
    (_link("images/train/passwd", "/etc/passwd"), "symlink .* points outside"),
    (_link("images/train/hard", "../outside.txt", tarfile.LNKTYPE), "hard link .* points outside"),
    (_link("images/dev", "", tarfile.CHRTYPE), "special file"),
    (_link("images/fifo", "", tarfile.FIFOTYPE), "special file"),
])
def test_links_out_and_special_files_are_rejected(tmp_path, server, member, problem):
    www, url, _ = server
    archive = _evil_tar(www / "evil.tar.gz", member)
    ds = replace(registry.get("miniplaces"), sources=(Source(f"{url}/evil.tar.gz", _sha(archive)),))
    with pytest.raises(fetch.UnsafeArchiveError, match=problem):
        fetch.fetch_dataset(ds, tmp_path / "data", progress=False, timeout=10)
    assert _nothing_left(tmp_path / "data")


def test_member_written_through_an_inside_symlink_is_rejected(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        tf.addfile(_link("images/link", "."))
        f = tarfile.TarInfo("images/link/x.txt")
        f.size = 1
        tf.addfile(f, io.BytesIO(b"x"))
    with pytest.raises(fetch.UnsafeArchiveError, match="under a link"):
        fetch.extract(archive, tmp_path / "out")


def test_zip_traversal_is_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("repo/ok.txt", "ok")
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(fetch.UnsafeArchiveError, match="climbs out"):
        fetch.extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_zip_special_file_is_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("repo/fifo")
        info.external_attr = 0o010644 << 16
        zf.writestr(info, "")
    with pytest.raises(fetch.UnsafeArchiveError, match="special file"):
        fetch.extract(archive, tmp_path / "out")


def test_zip_symlink_out_is_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("repo/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../../etc/passwd")
    with pytest.raises(fetch.UnsafeArchiveError, match="symlink"):
        fetch.extract(archive, tmp_path / "out")


def test_zip_archive_checked_by_tree_digest_needs_no_flag(tmp_path, server, monkeypatch):
    """SUN8's rule: a GitHub zip has no stable digest, but every extracted file is checked."""
    www, url, _ = server
    images = make_sun8(tmp_path / "repo-master" / "data" / "images")
    (tmp_path / "repo-master" / "README").write_text("other files of the repository")
    archive = www / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "repo-master").rglob("*")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    digest, count = verify.tree_sha256(images, progress=False)
    ds = replace(registry.get("sun8"), sources=(Source(f"{url}/master.zip", None),), tree_sha256=digest, tree_files=count)
    dest = tmp_path / "data"
    wrong = replace(ds, tree_sha256="0" * 64)
    with pytest.raises(fetch.FetchError, match="does not match the registered tree digest"):
        fetch.fetch_dataset(wrong, dest, progress=False, timeout=10)
    assert _nothing_left(dest, "sun8")
    out = fetch.fetch_dataset(ds, dest, progress=False, timeout=10, log=lambda s: None)
    assert sorted(p.name for p in out.iterdir()) == ["airport", "kitchen", "traintest.mat"]
    monkeypatch.setenv("COLORLAB_DATA", str(dest))
    assert len(data.samples("sun8", "train")) == 3


def test_imagenet_sample_fetch_derives_the_mirror_format(tmp_path, server):
    import numpy as np
    from PIL import Image

    www, url, _ = server
    archive = www / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, mode, size in [("n01440764_tench.JPEG", "RGB", (600, 400)), ("n15075141_toilet_tissue.JPEG", "L", (300, 512))]:
            buf = io.BytesIO()
            Image.fromarray(np.zeros((size[1], size[0], 3 if mode == "RGB" else 1), np.uint8).squeeze()).save(buf, "JPEG")
            zf.writestr(f"imagenet-sample-images-master/{name}", buf.getvalue())
        zf.writestr("imagenet-sample-images-master/README.md", "readme")
    ds = replace(registry.get("imagenet-sample"), sources=(Source(f"{url}/master.zip", None),))
    out = fetch.fetch_dataset(ds, tmp_path / "data", allow_unverified=True, progress=False, timeout=10, log=lambda s: None)
    assert sorted(p.name for p in out.iterdir()) == ["n01440764_tench.JPEG", "n15075141_toilet_tissue.JPEG"]
    with Image.open(out / "n01440764_tench.JPEG") as im:
        assert im.size == (384, 256) and im.mode == "RGB"
    with Image.open(out / "n15075141_toilet_tissue.JPEG") as im:
        assert im.size == (256, 437) and im.mode == "L"


def test_fetch_refuses_an_incomplete_existing_folder(tiny_places, tmp_path):
    (tmp_path / "data" / "miniplaces").mkdir(parents=True)
    with pytest.raises(fetch.FetchError, match="does not hold a complete"):
        fetch.fetch_dataset(tiny_places, tmp_path / "data", progress=False)


# --- verify and the command line ---------------------------------------------------------
def test_verify_reports_a_changed_file(tmp_path, monkeypatch):
    make_sun8(tmp_path / "sun8")
    digest, count = verify.tree_sha256(tmp_path / "sun8", progress=False)
    monkeypatch.setitem(registry.REGISTRY, "sun8", replace(registry.get("sun8"), tree_sha256=digest, tree_files=count))
    assert verify.verify_dataset("sun8", tmp_path, progress=False).ok
    (tmp_path / "sun8/airport/sun_a.jpg").write_bytes(b"changed")
    (tmp_path / "MANIFEST.sha256").write_text("".join(
        f"{d}  sun8/{rel}\n" for rel, d in verify.tree_digests(tmp_path / "sun8", progress=False).items()
        if rel != "airport/sun_a.jpg") + f"{'0' * 64}  sun8/airport/sun_a.jpg\n")
    report = verify.verify_dataset("sun8", tmp_path, progress=False)
    assert not report.ok and "airport/sun_a.jpg: differs from MANIFEST.sha256" in str(report)


def test_cli_list_verify_and_fetch_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    make_sun8(tmp_path / "sun8")
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "miniplaces" in out and "smoke" in out and str(tmp_path) in out
    sun8_row = next(line for line in out.splitlines() if line.startswith("sun8"))
    kodak_row = next(line for line in out.splitlines() if line.startswith("kodak24"))
    assert " yes " in sun8_row and " no " in kodak_row
    assert cli.main(["data", "verify", "kodak24"]) == 1
    assert "colorlab data fetch kodak24" in capsys.readouterr().out
    assert cli.main(["data", "verify", "sun8"]) == 1  # our tiny sun8 is not the mirror's
    assert "tree digest differs" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "miniplaces", "--dest", str(tmp_path / "elsewhere")]) == 1
    assert "--allow-unverified" in capsys.readouterr().out
    assert not (tmp_path / "elsewhere" / "miniplaces").exists()


@pytest.mark.data
def test_mirror_verifies_against_the_registered_digests(mirror):
    mirror("sun8")
    mirror("mobilenet_v2")
    assert verify.verify_dataset("sun8", progress=False).ok
    assert verify.verify_dataset("mobilenet_v2", progress=False).ok
