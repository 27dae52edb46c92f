"""`colorlab data fetch NAME`: download a dataset's originals, verify them, lay them out safely.

1. Every source is streamed to a staging folder (urllib, with a timeout and a
   tqdm bar) while its SHA-256 is computed, and checked against the registry.
   A source whose digest cannot be known offline is refused before anything is
   downloaded unless `allow_unverified` (it then prints the digest so it can
   be pinned), except where the dataset's extracted files are checked against
   a tree digest of the originals (SUN8).
2. Archives are extracted safely: every member is checked first, and the
   archive is rejected as a whole for an absolute path, a `..` component, a
   link whose target leaves the extraction folder (or a member under such a
   link), or a device, FIFO or other special file. Tar extraction then also
   runs with the standard library's `filter="data"`.
3. The dataset's parser arranges the files into our layout (the original's),
   all inside the staging folder, which is renamed into place at the very
   end. An interrupted or failed fetch leaves no dataset folder behind, only
   at worst a hidden `.<name>.fetch-*` folder after a hard kill.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from colorlab import settings
from colorlab.data import registry, verify
from colorlab.data.registry import Dataset, Source

TIMEOUT_S = 60.0  # per network operation, not per download
_BLOCK = 1 << 20


class FetchError(RuntimeError):
    """A download, checksum or extraction failed; nothing was left in the data folder."""


class UnsafeArchiveError(FetchError):
    """An archive member would land outside the target folder, or is not a plain file or folder."""


def fetch_dataset(dataset: str | Dataset, dest: str | os.PathLike | None = None, allow_unverified: bool = False,
                  progress: bool = True, timeout: float = TIMEOUT_S, log=print) -> Path:
    """Download, verify and lay out one dataset under `dest` (default `settings.data_dir()`); returns its folder."""
    ds = registry.get(dataset) if isinstance(dataset, str) else dataset
    if not ds.sources:
        raise FetchError(f"{ds.name!r} has nothing to download ({ds.title})")
    dest = Path(dest).expanduser().resolve() if dest else settings.data_dir()
    final = dest / ds.folder
    if ds.present(final):
        log(f"{ds.name} is already in {final}; check it with `colorlab data verify {ds.name}`")
        return final
    if final.exists():
        raise FetchError(f"{final} exists but does not hold a complete {ds.name} (no {ds.marker}); move it away and fetch again")
    unverified = [s.url for s in ds.sources if s.sha256 is None]
    if unverified and not (allow_unverified or ds.tree_is_original):
        raise FetchError(
            f"no pinned SHA-256 for {', '.join(unverified)} (the original's digest is not known offline). "
            f"Re-run with --allow-unverified to download anyway; the digest will be printed so you can pin it "
            f"in colorlab/data/registry.py."
        )
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ds.folder}.fetch-", dir=dest))
    try:
        out = staging / "out"
        out.mkdir()
        for i, src in enumerate(ds.sources):
            file = download(src, staging / "downloads", progress=progress, timeout=timeout, log=log)
            if src.target is not None:
                (out / src.target).parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, out / src.target)
                continue
            extracted = staging / f"extract{i}"
            extract(file, extracted)
            file.unlink()
            importlib.import_module(ds.parser).arrange(extracted, out)
            shutil.rmtree(extracted)
        if not ds.present(out):
            raise FetchError(f"the downloaded {ds.name} has no {ds.marker}; the archive layout is not the expected one")
        if ds.tree_is_original and ds.tree_sha256:
            digest, count = verify.tree_sha256(out, progress=progress)
            if digest != ds.tree_sha256:
                raise FetchError(f"the extracted {ds.name} ({count} files) does not match the registered tree digest "
                                 f"({ds.tree_files} files, {ds.tree_sha256[:12]}...); the source has changed")
            log(f"{ds.name}: all {count} files match the registered digests")
        os.rename(out, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"{ds.name} is ready in {final}" + ("" if dest == settings.data_dir() else f"; use it with COLORLAB_DATA={dest}"))
    return final


def download(src: Source, folder: Path, progress: bool = True, timeout: float = TIMEOUT_S, log=print) -> Path:
    """Stream `src.url` into `folder`, checking its SHA-256; the file is deleted on any failure."""
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urllib.request.urlparse(src.url).path).name or "download"
    path = folder / name
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(src.url, timeout=timeout) as resp, open(path, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress, file=sys.stderr) as bar:
                while block := resp.read(_BLOCK):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        path.unlink(missing_ok=True)
        raise FetchError(f"download of {src.url} failed: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        path.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise FetchError(f"could not download {src.url}: {reason}. Without internet, point COLORLAB_DATA at a "
                         f"local mirror instead.") from e
    digest = h.hexdigest()
    if src.sha256 is None:
        log(f"sha256 of {src.url}: {digest} (unverified; pin it in colorlab/data/registry.py)")
    elif digest != src.sha256:
        path.unlink()
        raise FetchError(f"checksum mismatch for {src.url}: expected sha256 {src.sha256}, got {digest}; "
                         f"the file was deleted")
    return path


def extract(archive: Path, target: Path) -> Path:
    """Extract a tar (any compression) or zip archive into `target`, refusing unsafe members."""
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_zip_member(archive, zf, info)
            zf.extractall(target)
        return target
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise FetchError(f"{archive.name}: neither a zip nor a tar archive ({e})") from e
    with tf:
        links: list[PurePosixPath] = []
        for m in tf.getmembers():
            _check_tar_member(archive, m, links)
        tf.extractall(target, filter="data")
    return target


def _safe_relative(archive: Path, name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refusing the archive")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} climbs out with '..'; refusing the archive")
    return p


def _escapes(link_dir: PurePosixPath, link_target: str) -> bool:
    """Whether `link_target`, read from inside `link_dir`, leaves the extraction root."""
    if link_target.startswith("/") or PurePosixPath(link_target).is_absolute():
        return True
    depth = len(link_dir.parts)
    for part in PurePosixPath(link_target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def _check_tar_member(archive: Path, m: tarfile.TarInfo, links: list[PurePosixPath]) -> None:
    p = _safe_relative(archive, m.name)
    if any(p == link or link in p.parents for link in links):
        raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} lies under a link; refusing the archive")
    if m.issym() or m.islnk():
        # A symlink's target is relative to its folder; a hard link's to the archive root.
        base = p.parent if m.issym() else PurePosixPath()
        if _escapes(base, m.linkname):
            kind = "symlink" if m.issym() else "hard link"
            raise UnsafeArchiveError(f"{archive.name}: {kind} {m.name!r} -> {m.linkname!r} points outside the "
                                     f"target folder; refusing the archive")
        links.append(p)
    elif not (m.isfile() or m.isdir()):
        raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is a device, FIFO or other special file; "
                                 f"refusing the archive")


def _check_zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    p = _safe_relative(archive, info.filename)
    mode = info.external_attr >> 16  # Unix mode when the zip was made on Unix; 0 or no type bits otherwise
    if stat.S_ISLNK(mode):  # zipfile would write it as a small file holding the target; still refuse escapes
        if _escapes(p.parent, zf.read(info).decode("utf-8", "replace")):
            raise UnsafeArchiveError(f"{archive.name}: symlink {info.filename!r} points outside the target folder; "
                                     f"refusing the archive")
    elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a special file; refusing the archive")
