"""`colorlab data verify NAME`: hash a dataset folder and compare it with the registry.

The tree digest of a folder is SHA-256 over the lines
`"<path relative to the folder>  <sha256 of the file>\\n"` of every regular
file under it, sorted by path (the format of `sha256sum`, path first). For
the mirror it can be recomputed from its MANIFEST.sha256 with

    grep '  sun8/' MANIFEST.sha256 | sed 's|  sun8/|  |' | awk '{print $2"  "$1}' | LC_ALL=C sort | sha256sum

Where the tree differs and the data folder has a MANIFEST.sha256 (the shared
mirror does), the files that differ are named.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from colorlab import keys, settings
from colorlab.data import registry

_SHOW = 10  # differing files listed at most


@dataclass
class Report:
    name: str
    folder: Path
    ok: bool
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"{self.name} ({self.folder}): {'OK' if self.ok else 'FAILED'}", *("  " + l for l in self.lines)])


file_sha256 = keys.file_sha256


def tree_files(folder: Path) -> list[str]:
    """Relative paths of every regular file under `folder`, sorted."""
    out = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.append(p.relative_to(folder).as_posix())
    return sorted(out)


def tree_digests(folder: Path, progress: bool = True) -> dict[str, str]:
    from tqdm.auto import tqdm

    files = tree_files(folder)
    return {rel: file_sha256(folder / rel) for rel in tqdm(files, desc=f"hashing {folder.name}", unit="file",
                                                           disable=not progress or len(files) < 200)}


def tree_sha256_of(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(digests):
        h.update(f"{rel}  {digests[rel]}\n".encode())
    return h.hexdigest()


def tree_sha256(folder: Path, progress: bool = True) -> tuple[str, int]:
    """(tree digest, number of files) of a folder."""
    digests = tree_digests(folder, progress)
    return tree_sha256_of(digests), len(digests)


def _manifest(path: Path, prefix: str) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        if rel.startswith(prefix):
            out[rel[len(prefix):]] = digest
    return out


def verify_dataset(name: str, data_dir: Path | None = None, progress: bool = True) -> Report:
    """Hash a registered dataset's folder and compare with the registry's digests."""
    ds = registry.get(name)
    if not ds.sources:
        return Report(name, settings.cache_dir() / ds.folder, True, ["built locally from bundled files; nothing to verify"])
    root = (Path(data_dir) if data_dir else settings.data_dir()) / ds.folder
    if not ds.present(root):
        raise registry.DatasetMissingError(name, root, ds.marker)
    pinned = {s.target: s.sha256 for s in ds.sources if s.target and s.sha256}
    if ds.tree_sha256 is None:
        bad = [f"{rel}: missing" if not (root / rel).is_file() else f"{rel}: sha256 differs"
               for rel, sha in pinned.items() if not (root / rel).is_file() or file_sha256(root / rel) != sha]
        return Report(name, root, not bad, bad or [f"all {len(pinned)} files match their pinned SHA-256"])
    digests = tree_digests(root, progress)
    if tree_sha256_of(digests) == ds.tree_sha256:
        return Report(name, root, True, [f"all {len(digests)} files match the registered tree digest"])
    lines = [f"tree digest differs: {len(digests)} files here, {ds.tree_files} registered"]
    if not ds.tree_is_original:
        lines.append("(the registered digest is of the shared mirror, which is a subset or re-encoded copy of the "
                     "original; a fresh fetch of the full original will not match it)")
    lines += [f"{rel}: sha256 differs from the original" for rel, sha in pinned.items() if digests.get(rel, sha) != sha]
    manifest = root.parent / "MANIFEST.sha256"
    if manifest.is_file():
        expected = _manifest(manifest, f"{ds.folder}/")
        diff = sorted(set(expected) ^ set(digests) | {r for r in expected if r in digests and expected[r] != digests[r]})
        lines += [f"{rel}: " + ("missing" if rel not in digests else "not in MANIFEST.sha256" if rel not in expected
                                else "differs from MANIFEST.sha256") for rel in diff[:_SHOW]]
        if len(diff) > _SHOW:
            lines.append(f"... and {len(diff) - _SHOW} more")
    return Report(name, root, False, lines)
