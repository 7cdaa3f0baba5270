"""Cut the product out of its source photo, and say which method cut it, why, and how sure it is.

Methods (``cutout.method`` in the brand spec, per category template where needed):

- ``alpha``: a transparent source's own alpha.
- ``backdrop``: separation from a plain studio backdrop. Only for photos whose border passes the
  plain-backdrop test (:func:`assess_backdrop`); a photo taken in a setting is refused, never cut.
- ``model``: a learned segmentation model (:mod:`lightbox.imaging.segmentation`), its soft mask refined
  at the edge (:mod:`.edge`), with a confidence (:mod:`.confidence`); an unsure model cut goes to review.
- ``auto`` (default): alpha for real transparency; backdrop when the border is a plain backdrop and
  the backdrop cut is sure of its outline; otherwise the model. Without a model, a photo with no plain
  backdrop is refused with one line, and an unsure backdrop cut is kept but flagged, so the gate sends
  it to review instead of a live channel.

Every cut carries ``diagnostics`` measured without ground truth (:func:`diagnose`), which the quality
gate reads: the share of the outline with contrast, the frame sides the mask runs into, raggedness,
the product's share of the photo, backdrop-coloured holes kept inside the product.
"""

from lightbox.imaging.cutout.morphology import dilate_cross, erode_cross
from lightbox.imaging.cutout.diagnostics import diagnose
from lightbox.imaging.cutout.result import CutOut
from lightbox.imaging.cutout.routing import cut_out, cut_out_many, plan_cut
from lightbox.imaging.cutout.settings import CUTOUT_VERSION, NO_BACKDROP
from lightbox.imaging.cutout.surface import BackdropTest, assess_backdrop

__all__ = ["CUTOUT_VERSION", "NO_BACKDROP", "BackdropTest", "CutOut", "assess_backdrop", "cut_out", "cut_out_many", "diagnose", "dilate_cross",
           "erode_cross", "plan_cut"]
