"""The learnable synthetic MTLCC dataset: a simulated Bavarian landscape written in the original layout.

Nobody can download the 40 GB ``data_IJGI18`` here, so every command defaults to this dataset. It is one simulated
landscape (EPSG:32632, north of Munich), written as two dataset roots of the same area: ``240`` (24 px tiles) and
``480`` (48 px tiles, each the 2 x 2 mosaic of four 24 px tiles). Modules:

- ``landscape``: parcels, land cover, crops per year and the spatial train/test/eval split;
- ``phenology``: crop calendars and land covers as endmember fractions over the year;
- ``spectra``: endmember spectra and the top-of-atmosphere signal in the bands of :mod:`utils.bands`;
- ``sky``: acquisition dates (two orbits, Sentinel-2A/B) and the weather of each (clouds, shadows, haze, snow);
- ``render``: the simulated world and the rendering of a tile into 13 bands at 10 m and into records;
- ``writer``: ``generate`` and ``ensure_default_dataset``;
- ``scene``: ``write_scene``, a large area of one year as Sentinel-2 data as users have them (per-date band folders
  at native resolution with diagonal swath edges, one SAFE product of baseline 04.00, the truth), and the raster and
  SAFE writers the tests use for their fixtures.
"""

from utils.synthetic.render import Scene, World, make_world, render_tile, to_tile
from utils.synthetic.writer import ensure_default_dataset, generate

__all__ = ["Scene", "World", "ensure_default_dataset", "generate", "make_world", "render_tile", "to_tile"]
