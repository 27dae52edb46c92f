"""Per-pixel features of Cheng et al. 2015, "Deep Colorization" (sec. 3.2): x_p = [patch; DAISY; semantic].

    from colorlab import features
    cfg = features.FeatureConfig()                 # paper: 49 + 32 + 47 = 128 values per pixel
    features.dims(cfg)                             # {"patch": 49, "daisy": 32, "semantic": 47, "total": 128}
    parser = experiments.cheng2015.load_parser("cpu")  # a run of the run store: trained once, then loaded
    x = features.extract(gray, cfg, parser)        # gray (H, W) float32 in [0, 1] -> (H, W, 128) float32

Levels, always concatenated in this order (any subset, for the ablation):

- `patch` (`low_level`, sec. 3.2.1): the 7x7 gray neighbourhood, row by row,
  reflect-padded at the border.
- `daisy` (`mid_level`, sec. 3.2.2 and sec. 4): dense DAISY (skimage) at every
  pixel; "4 locations and 8 orientations" read as the centre + 3 histograms on
  one ring of radius 8 px, 8 orientations = 32 values, not normalised (the
  gradient strength is kept). Radius and normalisation are our choice.
- `semantic` (`high_level`, sec. 3.2.3): class probabilities of a scene parser,
  upsampled from the parser's working size and smoothed by the domain
  transform (Gastal & Oliveira 2011, OpenCV `ximgproc`) guided by the gray
  image, then renormalised to sum to 1.

Scene parser (`features.parser`): a small FCN on gray input, trained on the
MiniPlaces object annotations with N = 47 classes (the 46 most frequent
object categories by train pixel count + "other_object"; unannotated pixels
ignored, see `features.labels`). Its training and `parser_quality(parser, "val")`
(pixel accuracy and mean IoU on the annotated val images) are in
`colorlab.experiments.parser`; this package holds no training. Presets `paper`, `gpu`,
`cpu` (about a minute or two on 2 cores) and `smoke` (no data: colour-cluster
pseudo-labels, a stand-in so the pipeline runs). Anything with `n_classes`
and `predict_proba(gray (H, W)) -> (H, W, N)` can stand in for the parser.

Tiles: `context_radius(cfg)` is how far the local levels look, so features of
a tile cropped with that margin equal those of the whole image; the semantic
level sees the whole image, so compute `high_level` once and pass it to
`extract(..., semantic=maps)`. Every level is vectorised (no loop over pixels).
"""

from colorlab.features.daisy import mid_level
from colorlab.features.descriptor import LEVELS, FeatureConfig, context_radius, dims, extract
from colorlab.features.labels import IGNORE, LabelSet
from colorlab.features.parser import PRESETS as PARSER_PRESETS
from colorlab.features.parser import ParserConfig, SceneParser
from colorlab.features.patch import low_level
from colorlab.features.segmentation import segmentation_scores
from colorlab.features.semantic import high_level, smooth

__all__ = [
    "IGNORE",
    "LEVELS",
    "PARSER_PRESETS",
    "FeatureConfig",
    "LabelSet",
    "ParserConfig",
    "SceneParser",
    "context_radius",
    "dims",
    "extract",
    "high_level",
    "low_level",
    "mid_level",
    "segmentation_scores",
    "smooth",
]
