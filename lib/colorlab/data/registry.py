"""Every dataset colorlab knows: where the original lives, its checksum, and the layout we keep.

Each entry names the public source(s), a SHA-256 where one can be known,
the folder it occupies under `settings.data_dir()` (the same layout as the
original, so the shared mirror and a fresh `colorlab data fetch` look alike)
and the parser module that reads that layout.

Which digests are of what (we are explicit because a checksum is only worth
what it was computed from):

- `Source.sha256` is the digest of the bytes at that URL. Kodak PNGs, the
  MobileNetV2 files and MiniPlaces' `categories.txt` / `object_categories.txt`
  are byte-identical in our mirror and in the original, so their digests
  were taken from the mirror's MANIFEST.sha256. `None` means we cannot know it
  offline: the MiniPlaces tarball (never downloaded here), the dev kit's
  `train.txt` / `val.txt` (the mirror holds shortened copies), and GitHub's
  on-the-fly zip archives (their bytes are not guaranteed stable anyway).
  `fetch` refuses such a source unless the user passes `--allow-unverified`
  (it then prints the digest so it can be pinned here), except where the
  extracted files are checked against a tree digest of originals (below).
- `Dataset.tree_sha256` is SHA-256 over the sorted lines
  `"<path relative to the dataset folder>  <sha256 of the file>\n"` of every
  file of the *mirror* folder (`colorlab.data.verify.tree_sha256`), for
  `colorlab data verify`. It describes the original only where
  `tree_is_original` is True (SUN8: the mirror is the repository's
  `data/images/` byte for byte); the MiniPlaces mirror is a subset and the
  imagenet-sample mirror is resized and re-encoded, so a fresh fetch of those
  will not match it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorlab import settings


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str | None  # of the bytes at `url`; None = not knowable offline (see the module doc)
    target: str | None = None  # a single file: its path in the dataset folder; None = an archive the parser arranges


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str  # under settings.data_dir()
    title: str
    splits: tuple[str, ...]
    parser: str | None  # module with samples(root, split), class_names(root) and, for archives, arrange(extracted, out)
    marker: str  # a file whose presence means the dataset is in place
    sources: tuple[Source, ...] = ()
    terms: str = ""
    size: str = ""  # of the local mirror
    tree_sha256: str | None = None  # of the mirror folder, see the module doc
    tree_files: int | None = None
    tree_is_original: bool = False  # the original's files are the mirror's, byte for byte

    def root(self) -> Path:
        return settings.data_dir() / self.folder

    def present(self, root: Path | None = None) -> bool:
        return ((root or self.root()) / self.marker).is_file()


class DatasetMissingError(FileNotFoundError):
    """A registered dataset is not under the data directory; the message says how to get it."""

    def __init__(self, name: str, folder: Path, marker: str | None = None):
        self.name, self.folder = name, Path(folder)
        looked = f"{self.folder}" + (f" (no {marker} there)" if marker else "")
        super().__init__(
            f"dataset {name!r} not found: looked in {looked}. Get it with `colorlab data fetch {name}`, "
            f"or point COLORLAB_DATA (with make: `make ... DATA_DIR=/path`) at a folder that holds {self.folder.name}/, "
            f"such as the shared data mirror."
        )


MINIPLACES_DEVKIT = "https://raw.githubusercontent.com/CSAILVision/miniplaces/master/data"
SUN8_ZIP = "https://github.com/nhantd/CMU16720-Scene-Classification/archive/refs/heads/master.zip"
IMAGENET_SAMPLE_ZIP = "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip"
CORAL_TEST_DATA = "https://github.com/google-coral/test_data/raw/master"

# From MANIFEST.sha256 of the mirror; the mirror's PNGs are the originals at r0k.us.
_KODAK_SHA256 = (
    "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd",
    "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd",
    "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db",
    "e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa",
    "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53",
    "363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18",
    "b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4",
    "ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7",
    "6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d",
    "9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23",
    "7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6",
    "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980",
    "bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08",
    "55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e",
    "7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683",
    "a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54",
    "37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b",
    "1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa",
    "b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc",
    "3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a",
    "ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b",
    "1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29",
    "e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf",
    "1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96",
)

PLACES_TERMS = "Places: non-commercial research and education; cite Zhou et al., TPAMI 2017"

REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="miniplaces",
            folder="miniplaces",
            title="MiniPlaces: 100 scene classes of Places2 at 128x128, with object polygons for a subset",
            splits=("train", "val"),
            parser="colorlab.data.miniplaces",
            marker="categories.txt",
            sources=(
                # 100k train / 10k val / 10k test images and objects/; never downloaded here, digest unknown.
                Source("http://miniplaces.csail.mit.edu/data/data.tar.gz", None),
                # Dev kit (CSAILVision/miniplaces, data/). These two match the mirror byte for byte.
                Source(f"{MINIPLACES_DEVKIT}/categories.txt",
                       "8658c6e5154e7502a1377e5ba1530b6f3618c0ddf98c72c14d2ad47bb6138d43", "categories.txt"),
                Source(f"{MINIPLACES_DEVKIT}/object_categories.txt",
                       "a5b4b475c579d9b641ba7473ab08a52cef5237340dc37155e857edca094aec8b", "object_categories.txt"),
                # The mirror's lists are cut down to its subset, so their digests are not the originals'.
                Source(f"{MINIPLACES_DEVKIT}/train.txt", None, "train.txt"),
                Source(f"{MINIPLACES_DEVKIT}/val.txt", None, "val.txt"),
            ),
            terms=PLACES_TERMS,
            size="162 MB (mirror subset: 25,228 train + 2,299 val); 100k/10k/10k in the original",
            tree_sha256="02b628ec9b48da4e9da26b63721536f995317868a062b841820f59519c3d6f9c",
            tree_files=31_404,
        ),
        Dataset(
            name="kodak24",
            folder="kodak24",
            title="Kodak Lossless True Color Image Suite, 24 PNGs at 768x512 / 512x768",
            splits=("all",),
            parser="colorlab.data.kodak24",
            marker="kodim24.png",
            sources=tuple(
                Source(f"http://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png", sha, f"kodim{i:02d}.png")
                for i, sha in enumerate(_KODAK_SHA256, start=1)
            ),
            terms="released by Kodak for unrestricted use",
            size="15 MB",
            tree_sha256="0be94fdb4c8d0e7b7b24490f096de661dfde8dcd28d81f242e5020da2b39e042",
            tree_files=24,
            tree_is_original=True,
        ),
        Dataset(
            name="sun8",
            folder="sun8",
            title="8 scene classes of the SUN database, with a train/test split (traintest.mat)",
            splits=("train", "test", "all"),
            parser="colorlab.data.sun8",
            marker="traintest.mat",
            # The repository's data/images/ is our sun8/; GitHub builds the zip on the fly, so no stable
            # digest: every extracted file is checked against the tree digest instead.
            sources=(Source(SUN8_ZIP, None),),
            terms="SUN database (Xiao et al., CVPR 2010): research use",
            size="22 MB (1,643 images + traintest.mat)",
            tree_sha256="c92ae6b6da124497364a7d53e0da8e9018a786310b5b6d601bfa780c0dd3652e",
            tree_files=1_644,
            tree_is_original=True,
        ),
        Dataset(
            name="imagenet-sample",
            folder="imagenet-sample",
            title="One ILSVRC-2012 image per class (1,000; 25 without colour: 23 grayscale files, 2 RGB with equal channels), shorter side 256 px",
            splits=("all",),
            parser="colorlab.data.imagenet_sample",
            marker="n15075141_toilet_tissue.JPEG",  # the last wnid in sorted order
            # Full-size originals; `arrange` derives the mirror's 256 px JPEGs from them, so the
            # tree digest (of the mirror) is not expected to match a fresh fetch byte for byte.
            sources=(Source(IMAGENET_SAMPLE_ZIP, None),),
            terms="ImageNet terms: non-commercial research",
            size="30 MB",
            tree_sha256="bd9c1793beaf7db0e61381ed2a82d565e42ae86cd95a7c87de83f14c7c6d9545",
            tree_files=1_000,
        ),
        Dataset(
            name="mobilenet_v2",
            folder="mobilenet_v2",
            title="MobileNetV2 1.0 224 ImageNet classifier, uint8 TFLite (1001 outputs, 0 = background)",
            splits=(),
            parser=None,  # a model, loaded by colorlab.models.mobilenet_v2
            marker="mobilenet_v2_1.0_224_quant.tflite",
            sources=(
                Source(f"{CORAL_TEST_DATA}/mobilenet_v2_1.0_224_quant.tflite",
                       "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
                       "mobilenet_v2_1.0_224_quant.tflite"),
                Source(f"{CORAL_TEST_DATA}/imagenet_labels.txt",
                       "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1", "imagenet_labels.txt"),
            ),
            terms="Apache-2.0",
            size="3.6 MB",
            tree_sha256="7ef2d571793f306af835cd612304f05fb1ad3d554c3cf651a4c8cdf307a87fb3",
            tree_files=2,
            tree_is_original=True,
        ),
        Dataset(
            name="smoke",
            folder="smoke",  # under settings.cache_dir(), built from photos shipped with the libraries
            title="9 colour photos shipped inside scikit-image and scikit-learn (no download)",
            splits=("train", "val"),
            parser="colorlab.data.smoke",
            marker="",
            terms="scikit-image photos: public domain / CC0 (see skimage.data); china, flower: CC BY 2.0 (Flickr)",
            size="built on first use, about 10 MB",
        ),
    )
}


def get(name: str) -> Dataset:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(REGISTRY)} or give a folder path") from None


def path(name: str) -> Path:
    """The folder of a registered dataset; `DatasetMissingError` when it is not there.

    `smoke` is built in the cache on first use.
    """
    ds = get(name)
    if name == "smoke":
        from colorlab.data import smoke

        return smoke.build()
    root = ds.root()
    if not ds.present(root):
        raise DatasetMissingError(name, root, ds.marker)
    return root
