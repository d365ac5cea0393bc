"""Reader (and look-alike writer) for the AGBD dataset's HDF5 patches (Sialelli et al., "AGBD: A Global-scale Biomass
Dataset", arXiv:2406.04928; code: github.com/ghjuliasialelli/AGBD).

The on-disk layout reproduced here was read from the AGBD repository: ``Patches/create_patches.py`` (writer:
``init_h5_group``/``save_results``, attribute dtypes ``GEDI_attrs``, ``S2_attrs``, ``ALOS_attrs``, ``CH_attrs``,
``LC_attrs``, ``DEM_attrs``), ``Models/dataset.py`` (loader ``GEDIDataset``, commit c6bc127, after the latitude/
longitude fix: file names, statistics pickle, normalisation, encodings), ``Models/README.md`` and ``Models/download.sh``
(file list), ``Models/parser.py`` and ``Models/scripts/*/train_all.sh`` (defaults: ``norm_strat='pct'``, 25×25 patches).

Layout of ``root``::

    data_subset-{year}-v4_{i}-20.h5        i = 0..19, year 2019 / 2020 (any subset present is read)
    statistics_subset_2019-2020-v4_new.pkl normalisation statistics (older name: ..._v4.pkl, also accepted)
    biomes_splits_to_name.pkl              {"train": [tile, ...], "val": [...], "test": [...]} (Sentinel-2 tile names)

Each ``.h5`` file holds one group per Sentinel-2 tile (e.g. ``30NXM``) with N patches of 25×25 pixels (10 m) centred
on a GEDI footprint (the label is at pixel (12, 12)):

=======================================  =====================  ===========================================
dataset                                  shape, dtype           content
=======================================  =====================  ===========================================
``S2_bands`` (attr ``order``)            N×25×25×12 uint16      L2A DN of B01 B02 B03 B04 B05 B06 B07 B08 B8A
                                                                B09 B11 B12; nodata 0
``S2_SCL``                               N×25×25 uint8          scene classification
``Sentinel_metadata/S2_boa_offset``      N uint8                1 when the product has the -1000 BOA offset
``Sentinel_metadata/S2_date``            N int16                days since GEDI mission start (2019-04-17)
``Sentinel_metadata/S2_vegetation_score, S2_pbn, S2_ron``  N uint8/uint16/uint8
``ALOS_bands`` (attr ``order``)          N×25×25×2 uint16       PALSAR-2 DN of HH, HV; nodata 0
``CH/ch``, ``CH/std``                    N×25×25 uint8          canopy height (m) and its std (Lang et al.);
                                                                nodata 255
``LC``                                   N×25×25×2 uint8        Copernicus land cover class, class probability
                                                                (%); nodata 255
``DEM``                                  N×25×25 int16          elevation (m); nodata -9999
``GEDI/agbd``                            N float32              GEDI L4A AGBD (Mg/ha) at the patch centre
``GEDI/agbd_se, elev_lowes, sensitivit, solar_elev, rh98``   float32
``GEDI/pft_class, region_cla, leaf_off_f, urban_prop, selected_a, granule_num, ppds, lat_offset, lon_offset``
                                                                uint8
``GEDI/shot_numbe`` uint64, ``GEDI/date`` uint16, ``GEDI/track_num`` uint32, ``GEDI/version_num`` uint16,
``GEDI/lat_decimal``, ``GEDI/lon_decimal`` float32
=======================================  =====================  ===========================================

``lat_offset``/``lat_decimal`` split the latitude into ``|integer part|`` (uint8) and the signed fractional part;
``lat = sign(lat_decimal) * (|lat_decimal| + lat_offset)`` (the loader's fixed formula).

The statistics pickle is ``{"S2_bands": {band: stats}, "ALOS_bands": {"HH": stats, "HV": stats}, "CH": {"ch": stats,
"std": stats}, "DEM": stats, "Sentinel_metadata": {"S2_date": stats}, "GEDI": {"agbd": stats, "date": stats}}`` with
``stats = {"mean", "std", "min", "max", "p1", "p99"}`` computed in the units the loader normalises: S2 surface
reflectance, ALOS gamma-naught dB, CH and std in m, DEM in m.

Preprocessing (as ``GEDIDataset.__getitem__``): S2 ``sr = (DN - boa_offset*1000) / 10000`` (0 where DN == 0, negatives
clipped to 0); ALOS ``gamma0 = 10*log10(DN**2) - 83`` dB (JAXA calibration); every feature normalised per band with
``pct`` (``(x - p1)/(p99 - p1)`` clipped to [0, 1], the paper's setting), ``mean_std`` or ``min_max``, nodata → 0;
land cover encoded as ``(cos(2π·lc/100)+1)/2``, ``(sin(2π·lc/100)+1)/2`` and ``prob/100``; latitude/longitude of
every pixel encoded as ``(cos(π·lat/90)+1)/2``, ``(sin(π·lat/90)+1)/2``, ``(cos(π·lon/180)+1)/2``,
``(sin(π·lon/180)+1)/2``. The label ``agbd`` is returned in Mg/ha, not normalised.

Differences from the original loader, on purpose: images are returned C×H×W (the original's ``swapaxes(-1, 0)``
gives C×W×H); bands are picked by name, in the order given; ``normalize=False`` returns physical units with NaN for
nodata.
"""

from __future__ import annotations

import bisect
import os
import pickle
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from terracarbon.errors import ConfigError, InputError

PathLike = str | os.PathLike

S2_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
ALOS_ORDER = ["HH", "HV"]
NODATAVALS = {"S2_bands": 0, "CH": 255, "ALOS_bands": 0, "DEM": -9999, "LC": 255}
GEDI_START_MISSION = date(2019, 4, 17)
STATS_FILES = ("statistics_subset_2019-2020-v4_new.pkl", "statistics_subset_2019-2020-v4.pkl")
SPLITS_FILE = "biomes_splits_to_name.pkl"
H5_PATTERN = re.compile(r"^data_subset-(\d{4})-v(\d+)_(\d+)-(\d+)\.h5$")
PATCH = 25
SPLITS = ("train", "val", "test")

# the loader's feature order for the full input ("all" configuration: S2, lat/lon, ALOS, CH, LC, DEM)
ALL_BANDS: list[str] = [
    *S2_ORDER,
    "LAT_COS",
    "LAT_SIN",
    "LON_COS",
    "LON_SIN",
    "HH",
    "HV",
    "CH",
    "CH_STD",
    "LC_COS",
    "LC_SIN",
    "LC_PROB",
    "DEM",
]
"""The loader's default 24 features, in its concatenation order (default selection of :class:`AGBDDataset`)."""

DATE_BANDS = ["S2_DAY", "S2_DOY_COS", "S2_DOY_SIN", "GEDI_DAY", "GEDI_DOY_COS", "GEDI_DOY_SIN"]
"""Optional date features (``GEDIDataset`` ``s2_dates``/``s2_day``/``s2_doy``/``gedi_dates``): the day count since the
GEDI mission start normalised by ``min_max`` (for ``pct``, as the loader does) and the day of year as
``(cos+1)/2, (sin+1)/2`` of ``2π·doy/365``, constant over the patch."""

GEDI_ATTRS: dict[str, Any] = {
    "pft_class": np.uint8,
    "region_cla": np.uint8,
    "leaf_off_f": np.uint8,
    "urban_prop": np.uint8,
    "agbd": np.float32,
    "agbd_se": np.float32,
    "elev_lowes": np.float32,
    "selected_a": np.uint8,
    "shot_numbe": np.uint64,
    "sensitivit": np.float32,
    "solar_elev": np.float32,
    "rh98": np.float32,
    "date": np.uint16,
    "granule_num": np.uint8,
    "track_num": np.uint32,
    "ppds": np.uint8,
    "version_num": np.uint16,
    "lat_offset": np.uint8,
    "lat_decimal": np.float32,
    "lon_offset": np.uint8,
    "lon_decimal": np.float32,
}
S2_META_ATTRS: dict[str, Any] = {
    "vegetation_score": np.uint8,
    "date": np.int16,
    "pbn": np.uint16,
    "ron": np.uint8,
    "boa_offset": np.uint8,
}
# Copernicus Global Land Cover classes used by AGBD (REF_BIOMES in the loader)
REF_BIOMES = {
    20: "Shrubs",
    30: "Herbaceous vegetation",
    40: "Cultivated",
    90: "Herbaceous wetland",
    111: "Closed-ENL",
    112: "Closed-EBL",
    114: "Closed-DBL",
    115: "Closed-mixed",
    116: "Closed-other",
    121: "Open-ENL",
    122: "Open-EBL",
    124: "Open-DBL",
    125: "Open-mixed",
    126: "Open-other",
}


LC_ONEHOT_BANDS = [f"LC_OH_{code}" for code in REF_BIOMES]
"""Optional one-hot land cover (``GEDIDataset`` ``onehot``): one band per class of :data:`REF_BIOMES`; a class
outside the list (or nodata) counts as the first class, as the loader's ``onehot_lc`` does."""

ACCEPTED_BANDS: list[str] = [*ALL_BANDS, *DATE_BANDS, *LC_ONEHOT_BANDS]
"""Every feature name :class:`AGBDDataset` accepts."""

LITE_FILES = {s: f"AGBD-Lite-{s}.h5" for s in ("train", "val", "test")}
"""AGBD-Lite split files (card of ``prs-eth/AGBD-Lite``; ``data/agbd_lite/helper/dataset.py`` in AGBD-GFMs):
one flat file per split (no tile groups, no ``CH``), statistics ``AGBD-Lite-statistics.pkl``."""
LITE_STATS_FILE = "AGBD-Lite-statistics.pkl"


# --------------------------------------------------------------------------------------------------------------------
# transforms (as in the AGBD loader)


def normalize_data(data: np.ndarray, stats: dict, norm_strat: str, nodata_value=None) -> np.ndarray:
    """Normalise ``data`` with ``stats`` by ``pct`` (clipped to [0, 1]), ``mean_std`` or ``min_max``; nodata → 0."""
    data = np.asarray(data, dtype=np.float64)
    if norm_strat == "mean_std":
        out = (data - stats["mean"]) / stats["std"]
    elif norm_strat == "pct":
        out = np.clip((data - stats["p1"]) / (stats["p99"] - stats["p1"]), 0, 1)
    elif norm_strat == "min_max":
        out = (data - stats["min"]) / (stats["max"] - stats["min"])
    else:
        raise ConfigError(f"normalisation strategy must be pct, mean_std or min_max, got {norm_strat!r}")
    if nodata_value is not None:
        out = np.where(data == nodata_value, 0.0, out)
    return out


def s2_reflectance(dn: np.ndarray, boa_offset: int | float) -> np.ndarray:
    """Surface reflectance from L2A digital numbers: ``(DN - offset*1000)/10000``, 0 for nodata and negatives."""
    dn = np.asarray(dn, dtype=np.float64)
    sr = (dn - float(boa_offset) * 1000.0) / 10000.0
    sr[dn == 0] = 0.0
    sr[sr < 0] = 0.0
    return sr


def alos_gamma0_db(dn: np.ndarray) -> np.ndarray:
    """PALSAR-2 gamma-naught (dB) from DN: ``10*log10(DN**2) - 83``; -9999 where DN == 0 (nodata)."""
    dn = np.asarray(dn, dtype=np.float64)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(dn**2) - 83.0
    return np.where(dn == NODATAVALS["ALOS_bands"], -9999.0, db)


def alos_dn(gamma0_db: np.ndarray) -> np.ndarray:
    """Inverse of :func:`alos_gamma0_db` (rounded to uint16 DN, at least 1)."""
    dn = np.sqrt(10.0 ** ((np.asarray(gamma0_db, dtype=np.float64) + 83.0) / 10.0))
    return np.clip(np.rint(dn), 1, 65535).astype(np.uint16)


def encode_lc(lc: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Land cover class → ((cos+1)/2, (sin+1)/2) of 2π·lc/100, and probability/100; nodata (255) → 0."""
    lc = np.asarray(lc, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    nod = NODATAVALS["LC"]
    cos = np.where(lc == nod, 0.0, (np.cos(2 * np.pi * lc / 100) + 1) / 2)
    sin = np.where(lc == nod, 0.0, (np.sin(2 * np.pi * lc / 100) + 1) / 2)
    p = np.where(prob == nod, 0.0, prob / 100)
    return cos, sin, p


def decode_lat_lon(lat_offset, lat_decimal, lon_offset, lon_decimal) -> tuple[float, float]:
    """Latitude/longitude of the footprint from the stored offset/decimal parts (fixed formula)."""
    lat = float(np.sign(lat_decimal) * (abs(float(lat_decimal)) + float(lat_offset)))
    lon = float(np.sign(lon_decimal) * (abs(float(lon_decimal)) + float(lon_offset)))
    return lat, lon


def encode_coords(lat: float, lon: float, patch_size: int, resolution: float = 10.0):
    """Per-pixel latitude/longitude of a patch around its centre, WRAP-encoded to [0, 1] (lat_cos, lat_sin, ...)."""
    i, j = np.indices((patch_size, patch_size))
    off_lat = (i - patch_size // 2) * resolution
    off_lon = (j - patch_size // 2) * resolution
    lats = lat + (off_lat / 6371000.0) * (180.0 / np.pi)
    lons = lon + (off_lon / 6371000.0) * (180.0 / np.pi) / np.cos(lats * np.pi / 180.0)
    return (
        (np.cos(np.pi * lats / 90) + 1) / 2,
        (np.sin(np.pi * lats / 90) + 1) / 2,
        (np.cos(np.pi * lons / 180) + 1) / 2,
        (np.sin(np.pi * lons / 180) + 1) / 2,
    )


def encode_doy(num_days: float) -> tuple[float, float]:
    """Day of year of ``num_days`` after the GEDI mission start as ``((cos+1)/2, (sin+1)/2)`` of ``2π·doy/365``
    (the loader's ``get_doy``; ``doy`` counted from 0)."""
    from datetime import timedelta

    doy = (GEDI_START_MISSION + timedelta(days=int(num_days))).timetuple().tm_yday - 1
    return (np.cos(2 * np.pi * doy / 365) + 1) / 2, (np.sin(2 * np.pi * doy / 365) + 1) / 2


def onehot_lc(lc: np.ndarray) -> np.ndarray:
    """One band per :data:`REF_BIOMES` class (K×H×W); unknown classes and nodata go to the first class."""
    codes = np.array(list(REF_BIOMES))
    lc = np.asarray(lc)
    idx = np.zeros(lc.shape, dtype=np.int64)
    for k, code in enumerate(codes):
        idx[lc == code] = k
    return (np.arange(len(codes))[:, None, None] == idx[None]).astype(np.float64)


# --------------------------------------------------------------------------------------------------------------------
# files


def _load_pickle(path: Path, what: str):
    if not path.exists():
        raise InputError(path, f"{what} missing (expected in the AGBD data folder)")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the dataset's own metadata format
    except Exception as exc:
        raise InputError(path, f"{what} unreadable ({type(exc).__name__}: {exc})") from exc


def is_lite(root: PathLike) -> bool:
    """True when ``root`` holds AGBD-Lite split files (``AGBD-Lite-{split}.h5``) rather than the tile files."""
    root = Path(root)
    return any((root / name).exists() for name in LITE_FILES.values())


def find_statistics(root: PathLike) -> Path:
    """Path of the normalisation statistics pickle in ``root`` (``..._v4_new.pkl`` preferred; AGBD-Lite's own)."""
    root = Path(root)
    names = (LITE_STATS_FILE, *STATS_FILES) if is_lite(root) else (*STATS_FILES, LITE_STATS_FILE)
    for name in names:
        if (root / name).exists():
            return root / name
    return root / names[0]


def read_statistics(root: PathLike) -> dict:
    """The normalisation statistics of an AGBD folder, with its expected structure checked."""
    path = find_statistics(root)
    stats = _load_pickle(path, "AGBD normalisation statistics")
    need = {"S2_bands", "ALOS_bands", "DEM", "GEDI"}
    if path.name != LITE_STATS_FILE:
        need.add("CH")  # AGBD-Lite carries no canopy height
    if not isinstance(stats, dict) or not need <= set(stats):
        raise InputError(path, f"not AGBD statistics: expected keys {sorted(need)}")
    return stats


def read_splits(root: PathLike) -> dict[str, list[str]]:
    """``{"train": [tile, ...], "val": [...], "test": [...]}`` from ``biomes_splits_to_name.pkl``."""
    path = Path(root) / SPLITS_FILE
    splits = _load_pickle(path, "AGBD split file")
    if not isinstance(splits, dict) or not set(SPLITS) <= set(splits):
        raise InputError(path, "not an AGBD split file: expected keys train, val, test")
    return {k: [str(t) for t in splits[k]] for k in SPLITS}


def list_h5_files(root: PathLike, years: Sequence[int] | None = None, version: int = 4) -> list[Path]:
    """The ``data_subset-{year}-v{version}_{i}-20.h5`` files in ``root``, sorted by year then index."""
    root = Path(root)
    found = []
    for p in root.iterdir():
        m = H5_PATTERN.match(p.name)
        if m and int(m.group(2)) == version and (years is None or int(m.group(1)) in years):
            found.append((int(m.group(1)), int(m.group(3)), p))
    return [p for _, _, p in sorted(found)]


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable HDF5 file, truncated or corrupt ({exc})") from exc


INDEX_CACHE = ".terracarbon-agbd-index.json"


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def _cache_path(root: Path) -> Path:
    own = root / INDEX_CACHE
    if os.access(root, os.W_OK):
        return own
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "terracarbon" / "agbd"
    return base / f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def build_index(root: PathLike, files: Sequence[Path], *, cache: bool = True) -> dict[str, dict[str, int]]:
    """``{file name: {tile: n_patches}}`` of the AGBD ``files`` (``""`` is the tile of a flat AGBD-Lite file).

    Built once by reading each file's group names and ``GEDI/agbd`` lengths (no patch data), then cached as JSON in
    ``root/.terracarbon-agbd-index.json`` (or ``~/.cache/terracarbon/agbd/`` when ``root`` is read-only), keyed by
    file name, size and modification time; later datasets, epochs and workers reuse it without opening the files.
    """
    import json

    root = Path(root)
    cpath = _cache_path(root)
    cached: dict[str, Any] = {}
    if cache and cpath.exists():
        try:
            cached = json.loads(cpath.read_text())
        except (OSError, ValueError):
            cached = {}
    index: dict[str, dict[str, int]] = {}
    changed = False
    for path in files:
        key = _file_key(path)
        hit = cached.get(key)
        if hit is not None:
            index[path.name] = {str(t): int(n) for t, n in hit.items()}
            continue
        tiles: dict[str, int] = {}
        with _open_h5(path) as f:
            if "GEDI" in f and "S2_bands" in f:  # flat AGBD-Lite file
                tiles[""] = int(len(f["GEDI"]["agbd"]))
            else:
                for tile in sorted(f.keys()):
                    try:
                        tiles[tile] = int(len(f[tile]["GEDI"]["agbd"]))
                    except (KeyError, TypeError) as exc:
                        raise InputError(path, f"tile {tile}: missing GEDI/agbd ({exc})") from exc
        index[path.name] = tiles
        cached[key] = tiles
        changed = True
    if cache and changed:
        try:
            from terracarbon.utils import atomic_path

            cpath.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cpath) as tmp:
                tmp.write_text(json.dumps(cached))
        except OSError:  # pragma: no cover - cache is an optimisation only
            pass
    return index


class _CachedGroup:
    """An h5py group whose dataset lookups (``"GEDI/agbd"`` paths) are cached: a lookup costs ~1 ms per call in
    h5py, which dominated per-item reads before."""

    def __init__(self, grp) -> None:
        self._grp = grp
        self._cache: dict[str, Any] = {}
        self._has: dict[str, bool] = {}

    def __getitem__(self, key: str):
        d = self._cache.get(key)
        if d is None:
            d = self._cache[key] = self._grp[key]
        return d

    def __contains__(self, key: str) -> bool:
        h = self._has.get(key)
        if h is None:
            h = self._has[key] = key in self._grp
        return h


# --------------------------------------------------------------------------------------------------------------------
# dataset


class AGBDDataset(Dataset):
    """PyTorch dataset over AGBD patches: one item per GEDI footprint of the tiles in ``split``.

    Parameters
    ----------
    root: folder with the ``.h5`` files, ``biomes_splits_to_name.pkl`` and the statistics pickle (AGBD layout), or
        with the AGBD-Lite files ``AGBD-Lite-{train,val,test}.h5`` + ``AGBD-Lite-statistics.pkl`` (one file per
        split, no tile groups, no canopy height).
    split: ``"train"``, ``"val"`` or ``"test"`` (tiles listed in ``biomes_splits_to_name.pkl``).
    bands: names from :data:`ACCEPTED_BANDS` (output channels in that order); ``None`` = :data:`ALL_BANDS`.
    patch_size: odd crop size around the footprint (≤ the stored 25); 1 gives the centre pixel only.
    norm_strat: ``"pct"`` (paper), ``"mean_std"`` or ``"min_max"``.
    normalize: ``False`` returns physical units (reflectance, dB, m) with NaN for nodata.
    years: restrict to files of these years (default: all found). ``version``: dataset version in file names (4).
    max_patches, fraction: keep a seeded random subset (``fraction`` of the split, then at most ``max_patches``),
        in file order so reads stay sequential. ``seed``: seed of that subset.
    stats: normalisation statistics to use instead of the folder's pickle (e.g. those stored in a checkpoint).
    return_lc: add ``lc`` (land cover class at the centre pixel, 255 = nodata) to items (per-biome scores).
    cache_index: cache the file/tile index (:func:`build_index`).

    Items are dicts: ``image`` (float32 tensor C×H×W), ``agbd`` (float32 scalar tensor, Mg/ha, not normalised),
    ``agbd_se``, ``lat``, ``lon``, ``tile``, ``file``, ``index`` (row in the tile's datasets).

    Streaming: the index is built once (and cached), nothing is scanned per epoch, and each DataLoader worker opens
    its own h5py handles on first use (handles are dropped when pickled and reopened after a fork).
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        bands: Sequence[str] | None = None,
        patch_size: int = 25,
        *,
        norm_strat: str = "pct",
        normalize: bool = True,
        years: Sequence[int] | None = None,
        version: int = 4,
        max_patches: int | None = None,
        fraction: float | None = None,
        seed: int = 0,
        stats: dict | None = None,
        return_lc: bool = False,
        cache_index: bool = True,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "AGBD data folder does not exist")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if norm_strat not in ("pct", "mean_std", "min_max"):
            raise ConfigError(f"norm_strat must be pct, mean_std or min_max, got {norm_strat!r}")
        if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0 or patch_size > PATCH:
            raise ConfigError(f"patch_size must be an odd integer between 1 and {PATCH}, got {patch_size!r}")
        if fraction is not None and not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        if max_patches is not None and max_patches < 1:
            raise ConfigError(f"max_patches must be >= 1, got {max_patches}")
        bands = list(ALL_BANDS) if bands is None else [str(b) for b in bands]
        unknown = [b for b in bands if b.upper() not in ACCEPTED_BANDS]
        if unknown:
            raise ConfigError(f"unknown AGBD band(s) {unknown}; available: {', '.join(ACCEPTED_BANDS)}")
        if not bands:
            raise ConfigError("bands must name at least one band")
        self.bands = [b.upper() for b in bands]
        self.split = split
        self.patch_size = patch_size
        self.norm_strat = norm_strat
        self.normalize = normalize
        self.return_lc = return_lc
        self.lite = is_lite(self.root)
        self.stats_path = find_statistics(self.root)
        self.stats = stats if stats is not None else read_statistics(self.root)
        if self.lite:
            lite_file = self.root / LITE_FILES[split]
            if not lite_file.exists():
                raise InputError(lite_file, f"AGBD-Lite {split} file missing")
            self.splits = {}
            self.files = [lite_file]
            if {"CH", "CH_STD"} & set(self.bands):
                raise ConfigError("AGBD-Lite has no canopy height (CH, CH_STD); choose other features")
            wanted = None
        else:
            self.splits = read_splits(self.root)
            self.files = list_h5_files(self.root, years, version)
            if not self.files:
                raise InputError(self.root, f"no AGBD files data_subset-<year>-v{version}_<i>-20.h5 found")
            wanted = set(self.splits[split])
        index = build_index(self.root, self.files, cache=cache_index)
        # entries: (file, tile, n) in file order, tiles sorted as np.intersect1d does in the loader
        self._entries: list[tuple[Path, str, int]] = []
        for path in self.files:
            for tile in sorted(index[path.name]):
                if wanted is not None and tile not in wanted:
                    continue
                n = index[path.name][tile]
                if n:
                    self._entries.append((path, tile, n))
        self._cum = np.cumsum([n for _, _, n in self._entries]).tolist()
        total = self._cum[-1] if self._cum else 0
        self._sel: np.ndarray | None = None
        if (fraction is not None and fraction < 1) or (max_patches is not None and max_patches < total):
            rng = np.random.default_rng([seed, 13])
            k = total if fraction is None else max(1, int(round(fraction * total)))
            if max_patches is not None:
                k = min(k, max_patches)
            self._sel = np.sort(rng.choice(total, size=min(k, total), replace=False))
        self._handles: dict[Path, Any] = {}
        self._pid = os.getpid()
        self._checked: set[tuple[Path, str]] = set()
        self._groups: dict[tuple[Path, str], _CachedGroup] = {}

    # -- indexing ---------------------------------------------------------------------------------------------------
    @property
    def n_total(self) -> int:
        """Patches of the split before sampling."""
        return self._cum[-1] if self._cum else 0

    def __len__(self) -> int:
        return int(len(self._sel)) if self._sel is not None else self.n_total

    def locate(self, n: int) -> tuple[Path, str, int]:
        """(file, tile, row) of item ``n``."""
        if not 0 <= n < len(self):
            raise IndexError(f"index {n} out of range for {len(self)} AGBD patches")
        if self._sel is not None:
            n = int(self._sel[n])
        k = bisect.bisect_right(self._cum, n)
        start = self._cum[k - 1] if k else 0
        path, tile, _ = self._entries[k]
        return path, tile, n - start

    @property
    def tiles(self) -> list[str]:
        """Tiles of this split present in the files (``[""]`` for AGBD-Lite's flat files)."""
        return sorted({t for _, t, _ in self._entries})

    def _handle(self, path: Path):
        if os.getpid() != self._pid:  # forked DataLoader worker: reopen
            self._handles = {}
            self._pid = os.getpid()
        h = self._handles.get(path)
        if h is None:
            h = self._handles[path] = _open_h5(path)
        return h

    def _group(self, path: Path, tile: str):
        if os.getpid() != self._pid:  # forked DataLoader worker: its own handles
            self._handles, self._groups, self._pid = {}, {}, os.getpid()
        key = (path, tile)
        grp = self._groups.get(key)
        if grp is not None:
            return grp
        f = self._handle(path)
        grp = self._groups[key] = _CachedGroup(f[tile] if tile else f)
        if (path, tile) not in self._checked:
            try:
                shape = grp["S2_bands"].shape
            except KeyError as exc:
                raise InputError(path, f"tile {tile or '(flat)'}: missing dataset ({exc})") from exc
            if shape[1] != shape[2] or shape[1] < self.patch_size:
                raise InputError(
                    path, f"tile {tile}: patches are {shape[1]}×{shape[2]}, need ≥ {self.patch_size}"
                )
            self._checked.add((path, tile))
        return grp

    def close(self) -> None:
        """Close the open HDF5 handles."""
        for h in self._handles.values():
            try:
                h.close()
            except Exception:  # pragma: no cover
                pass
        self._handles = {}
        self._groups = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        state["_groups"] = {}
        return state

    # -- items ------------------------------------------------------------------------------------------------------
    def __getitem__(self, n: int) -> dict[str, Any]:
        import torch

        path, tile, idx = self.locate(int(n))
        grp = self._group(path, tile)
        full = grp["S2_bands"].shape[1]
        c = full // 2
        w = self.patch_size // 2
        sl = (idx, slice(c - w, c + w + 1), slice(c - w, c + w + 1))
        want = set(self.bands)
        feats: dict[str, np.ndarray] = {}
        norm = self.normalize
        strat = self.norm_strat
        ps = (self.patch_size, self.patch_size)
        lc_center = None
        try:
            s2_want = [b for b in S2_ORDER if b in want]
            if s2_want:
                order = [str(b) for b in grp["S2_bands"].attrs.get("order", S2_ORDER)]
                raw = grp["S2_bands"][sl].astype(np.float64)  # h×w×12
                boa = grp["Sentinel_metadata/S2_boa_offset"][idx] if "Sentinel_metadata/S2_boa_offset" in grp else 0
                for b in s2_want:
                    dn = raw[..., order.index(b)]
                    sr = s2_reflectance(dn, boa)
                    if norm:
                        feats[b] = normalize_data(
                            sr, self.stats["S2_bands"][b], strat, NODATAVALS["S2_bands"]
                        )
                    else:
                        feats[b] = np.where(dn == 0, np.nan, sr)
            date_strat = "min_max" if strat == "pct" else strat
            for prefix, key in (("S2", "Sentinel_metadata/S2_date"), ("GEDI", "GEDI/date")):
                if not want & {f"{prefix}_DAY", f"{prefix}_DOY_COS", f"{prefix}_DOY_SIN"}:
                    continue
                days = float(grp[key][idx])
                dstats = (self.stats["Sentinel_metadata"]["S2_date"] if prefix == "S2" else self.stats["GEDI"]["date"])
                day = normalize_data(np.array(days), dstats, date_strat) if norm else np.array(days)
                dc, ds_ = encode_doy(days)
                feats[f"{prefix}_DAY"] = np.full(ps, float(day))
                feats[f"{prefix}_DOY_COS"] = np.full(ps, dc)
                feats[f"{prefix}_DOY_SIN"] = np.full(ps, ds_)
            lat, lon = decode_lat_lon(
                grp["GEDI/lat_offset"][idx],
                grp["GEDI/lat_decimal"][idx],
                grp["GEDI/lon_offset"][idx],
                grp["GEDI/lon_decimal"][idx],
            )
            if want & {"LAT_COS", "LAT_SIN", "LON_COS", "LON_SIN"}:
                enc = encode_coords(lat, lon, self.patch_size)
                for name, arr in zip(("LAT_COS", "LAT_SIN", "LON_COS", "LON_SIN"), enc):
                    feats[name] = arr
            alos_want = [b for b in ALOS_ORDER if b in want]
            if alos_want:
                order = [str(b) for b in grp["ALOS_bands"].attrs.get("order", ALOS_ORDER)]
                raw = grp["ALOS_bands"][sl]
                for b in alos_want:
                    db = alos_gamma0_db(raw[..., order.index(b)])
                    if norm:
                        feats[b] = normalize_data(db, self.stats["ALOS_bands"][b], strat, -9999.0)
                    else:
                        feats[b] = np.where(db == -9999.0, np.nan, db)
            for name, key in (("CH", "ch"), ("CH_STD", "std")):
                if name in want:
                    v = grp[f"CH/{key}"][sl].astype(np.float64)
                    if norm:
                        feats[name] = normalize_data(v, self.stats["CH"][key], strat, NODATAVALS["CH"])
                    else:
                        feats[name] = np.where(v == NODATAVALS["CH"], np.nan, v)
            lc_want = want & {"LC_COS", "LC_SIN", "LC_PROB", *LC_ONEHOT_BANDS}
            if lc_want:
                lc = grp["LC"][sl]
                for name, arr in zip(("LC_COS", "LC_SIN", "LC_PROB"), encode_lc(lc[..., 0], lc[..., 1])):
                    feats[name] = arr
                if want & set(LC_ONEHOT_BANDS):
                    for name, arr in zip(LC_ONEHOT_BANDS, onehot_lc(lc[..., 0])):
                        feats[name] = arr
                lc_center = int(lc[w, w, 0])
            if self.return_lc and lc_center is None:
                lc_center = int(grp["LC"][idx, c, c, 0])
            if "DEM" in want:
                v = grp["DEM"][sl].astype(np.float64)
                if norm:
                    feats["DEM"] = normalize_data(v, self.stats["DEM"], strat, NODATAVALS["DEM"])
                else:
                    feats["DEM"] = np.where(v == NODATAVALS["DEM"], np.nan, v)
            agbd = float(grp["GEDI/agbd"][idx])
            agbd_se = float(grp["GEDI/agbd_se"][idx]) if "GEDI/agbd_se" in grp else float("nan")
        except KeyError as exc:
            raise InputError(path, f"tile {tile or '(flat)'}: missing dataset or band ({exc})") from exc
        except OSError as exc:
            raise InputError(path, f"tile {tile}: read failed, file corrupt? ({exc})") from exc
        image = np.stack([feats[b] for b in self.bands]).astype(np.float32)
        item = {
            "image": torch.from_numpy(image),
            "agbd": torch.tensor(agbd, dtype=torch.float32),
            "agbd_se": agbd_se,
            "lat": lat,
            "lon": lon,
            "tile": tile,
            "file": path.name,
            "index": idx,
        }
        if self.return_lc:
            item["lc"] = lc_center
        return item

    def labels(self) -> np.ndarray:
        """All ``agbd`` labels of this split (Mg/ha), in item order (after sampling), read without the images."""
        out = []
        for path, tile, _ in self._entries:
            grp = self._handle(path)[tile] if tile else self._handle(path)
            out.append(grp["GEDI"]["agbd"][:].astype(np.float32))
        labels = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
        return labels[self._sel] if self._sel is not None else labels

    def item_tiles(self) -> list[str]:
        """The tile of every item, in item order (after sampling)."""
        tiles = np.concatenate([np.full(n, t, dtype=object) for _, t, n in self._entries]) if self._entries else []
        tiles = np.asarray(tiles, dtype=object)
        return list(tiles[self._sel] if self._sel is not None else tiles)

    def __repr__(self) -> str:
        return (
            f"AGBDDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"bands={len(self.bands)}, patch_size={self.patch_size}, norm_strat={self.norm_strat!r})"
        )


# --------------------------------------------------------------------------------------------------------------------
# writer


_TILES = [
    "30NXM",
    "18NWL",
    "21LYG",
    "36MZE",
    "33TXN",
    "44RPR",
    "17QQE",
    "11SKU",
    "22NCL",
    "59GPM",
    "34TFK",
    "45RUL",
]
_TILE_LATLON = {
    "30NXM": (6.6, -1.4),
    "18NWL": (4.2, -74.6),
    "21LYG": (-12.4, -54.2),
    "36MZE": (-5.1, 35.9),
    "33TXN": (47.6, 15.9),
    "44RPR": (28.1, 84.3),
    "17QQE": (21.8, -79.2),
    "11SKU": (37.2, -119.4),
    "22NCL": (4.6, -52.9),
    "59GPM": (-40.9, 172.9),
    "34TFK": (40.3, 22.1),
    "45RUL": (27.6, 85.3),
}


def _stats_of(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()) or 1.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "p1": float(np.percentile(v, 1)),
        "p99": float(np.percentile(v, 99)),
    }


def _smooth(rng: np.random.Generator, n: int, p: int, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    x = rng.standard_normal((n, p, p))
    x = gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect")
    return x / (x.std(axis=(1, 2), keepdims=True) + 1e-9)


def _explode(x: float) -> tuple[np.float32, np.uint8]:
    frac, whole = np.modf(x)
    return np.float32(frac), np.uint8(abs(whole))


def write_agbd_sample(
    root: PathLike,
    n_tiles: int = 3,
    patches_per_tile: int = 8,
    seed: int = 0,
    *,
    year: int = 2019,
    n_files: int = 1,
    patch_size: int = PATCH,
    extra_split_tiles: bool = True,
    label_noise: float = 0.25,
    lite: bool = False,
) -> dict[str, Any]:
    """Write a small AGBD look-alike into ``root``: ``.h5`` files, statistics pickle and split pickle.

    Labels are a known function of the patch plus known noise, so accuracy is testable:
    ``agbd = sample_truth(CH[centre]) * exp(N(-0.03, label_noise))`` with the uint8 canopy height as stored
    (:func:`sample_truth`); ``noise_floor_rmse`` in the result is the RMSE of the labels against their conditional
    mean given the patch (the best any model can do), per split. ``lite=True`` writes the AGBD-Lite layout instead
    (``AGBD-Lite-{split}.h5`` flat files with the datasets of AGBD-GFMs ``data/agbd_lite/features.json`` plus
    ``region``, and ``AGBD-Lite-statistics.pkl`` without canopy height).

    Tiles (real Sentinel-2 tile names) are spread over ``n_files`` files ``data_subset-{year}-v4_{i}-20.h5`` and over the
    splits train/val/test round-robin (so ``n_tiles >= 3`` gives every split a tile). Each tile gets
    ``patches_per_tile`` 25×25 patches with the real group/dataset names and dtypes; the GEDI ``agbd`` label follows
    the canopy height at the patch centre (saturating allometry, lognormal noise). Some patches carry nodata corners
    (S2 0, CH 255, DEM -9999, LC 255) and the post-2022 S2 BOA offset. Statistics are computed from the written data
    in the loader's units. Returns ``{"files", "statistics", "splits", "split_tiles", "n_patches",
    "noise_floor_rmse": {split: rmse}, "truth": {tile: conditional mean label per patch}}``.
    """
    import h5py

    from terracarbon.utils import atomic_path

    if n_tiles < 1 or n_tiles > len(_TILES):
        raise ConfigError(f"n_tiles must be between 1 and {len(_TILES)}, got {n_tiles}")
    if patches_per_tile < 1 or n_files < 1:
        raise ConfigError("patches_per_tile and n_files must be >= 1")
    if patch_size % 2 == 0:
        raise ConfigError("patch_size must be odd")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tiles = _TILES[:n_tiles]
    split_tiles: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i, t in enumerate(tiles):
        split_tiles[SPLITS[i % 3]].append(t)
    p = patch_size
    c = p // 2
    n = patches_per_tile
    collected: dict[str, list[np.ndarray]] = {
        **{f"S2_{b}": [] for b in S2_ORDER},
        "HH": [],
        "HV": [],
        "ch": [],
        "std": [],
        "dem": [],
        "agbd": [],
        "gdate": [],
        "s2date": [],
    }
    per_tile: dict[str, dict[str, np.ndarray]] = {}
    cond_mean: dict[str, np.ndarray] = {}
    days0 = (date(year, 1, 1) - GEDI_START_MISSION).days
    days0 = max(days0, 0)
    for ti, tile in enumerate(tiles):
        lat0, lon0 = _TILE_LATLON[tile]
        ch = np.clip(18 + 9 * _smooth(rng, n, p, 3.0) + rng.normal(0, 6, (n, 1, 1)), 0, 60)
        ch_std = np.clip(2 + 0.15 * ch + rng.normal(0, 0.5, ch.shape), 0, 30)
        cover = 1 - np.exp(-ch / 8)
        canopy = np.array([0.010, 0.020, 0.040, 0.025, 0.07, 0.20, 0.25, 0.30, 0.31, 0.33, 0.15, 0.07])
        soil = np.array([0.07, 0.08, 0.11, 0.14, 0.17, 0.20, 0.22, 0.23, 0.24, 0.25, 0.30, 0.24])
        refl = cover[..., None] * canopy + (1 - cover[..., None]) * soil
        refl = refl * np.exp(0.05 * rng.standard_normal(refl.shape))
        boa = (rng.random(n) < 0.4).astype(np.uint8)
        dn = np.clip(
            np.rint(refl * 10000 + boa[:, None, None, None].astype(np.float64) * 1000), 1, 65535
        ).astype(np.uint16)
        hv = -22 + 9 * (1 - np.exp(-ch / 15)) + rng.normal(0, 0.8, ch.shape)
        hh = -13 + 5 * (1 - np.exp(-ch / 15)) + rng.normal(0, 0.8, ch.shape)
        alos = np.stack([alos_dn(hh), alos_dn(hv)], axis=-1)
        dem = np.rint(300 + 250 * _smooth(rng, n, p, 6.0) + 100 * ti).astype(np.int16)
        lc_classes = np.array(list(REF_BIOMES))
        lc = rng.choice(lc_classes, size=(n, 1, 1)) * np.ones((1, p, p), dtype=np.int64)
        lc = np.where(ch > 10, np.where(lc < 100, 112, lc), lc).astype(np.uint8)
        lc_prob = rng.integers(40, 101, size=(n, p, p)).astype(np.uint8)
        lc_arr = np.stack([lc, lc_prob], axis=-1)
        ch_u8 = np.rint(ch).astype(np.uint8)
        std_u8 = np.rint(ch_std).astype(np.uint8)
        # nodata corners on every third patch
        for k in range(0, n, 3):
            dn[k, :3, :3, :] = 0
            alos[k, -2:, :2, :] = 0
            ch_u8[k, :2, -2:] = 255
            std_u8[k, :2, -2:] = 255
            dem[k, -3:, -3:] = -9999
            lc_arr[k, :2, :2, :] = 255
        h_c = ch_u8[:, c, c].astype(np.float64)
        agbd_true = sample_truth(h_c)
        agbd = (agbd_true * np.exp(rng.normal(-0.03, label_noise, n))).astype(np.float32)
        cond_mean[tile] = agbd_true * np.exp(-0.03 + label_noise**2 / 2)
        lat = lat0 + rng.uniform(-0.4, 0.4, n)
        lon = lon0 + rng.uniform(-0.4, 0.4, n)
        gdate = rng.integers(days0, days0 + 365, n).astype(np.uint16)
        s2date = (gdate.astype(np.int32) + rng.integers(-30, 30, n)).astype(np.int16)
        gedi = {
            "pft_class": rng.integers(1, 8, n),
            "region_cla": rng.integers(1, 7, n),
            "leaf_off_f": np.zeros(n),
            "urban_prop": rng.integers(0, 5, n),
            "agbd": agbd,
            "agbd_se": (agbd * 0.1 + 5).astype(np.float32),
            "elev_lowes": dem[:, c, c].astype(np.float32) + rng.normal(0, 2, n),
            "selected_a": rng.integers(1, 7, n),
            "shot_numbe": (
                np.uint64(10**17) + np.arange(n, dtype=np.uint64) * np.uint64(1000) + np.uint64(ti)
            ),
            "sensitivit": rng.uniform(0.95, 0.99, n),
            "solar_elev": rng.uniform(-30, -1, n),
            "rh98": (h_c + rng.normal(0, 2, n)).astype(np.float32),
            "date": gdate,
            "granule_num": rng.integers(1, 5, n),
            "track_num": rng.integers(1000, 9000, n),
            "ppds": np.full(n, 2),
            "version_num": np.full(n, 2),
            "lat_offset": np.array([_explode(v)[1] for v in lat]),
            "lat_decimal": np.array([_explode(v)[0] for v in lat]),
            "lon_offset": np.array([_explode(v)[1] for v in lon]),
            "lon_decimal": np.array([_explode(v)[0] for v in lon]),
        }
        per_tile[tile] = {
            "S2_bands": dn,
            "S2_SCL": np.full((n, p, p), 4, dtype=np.uint8),
            "ALOS_bands": alos,
            "ch": ch_u8,
            "std": std_u8,
            "LC": lc_arr,
            "DEM": dem,
            "boa": boa,
            "s2date": s2date,
            "gedi": gedi,
        }
        sr = (dn.astype(np.float64) - boa[:, None, None, None].astype(np.float64) * 1000) / 10000
        for i, b in enumerate(S2_ORDER):
            v = sr[..., i][dn[..., i] != 0]
            collected[f"S2_{b}"].append(np.clip(v, 0, None))
        for i, b in enumerate(ALOS_ORDER):
            db = alos_gamma0_db(alos[..., i])
            collected[b].append(db[db != -9999.0])
        collected["ch"].append(ch_u8[ch_u8 != 255].astype(float))
        collected["std"].append(std_u8[std_u8 != 255].astype(float))
        collected["dem"].append(dem[dem != -9999].astype(float))
        collected["agbd"].append(agbd)
        collected["gdate"].append(gdate.astype(float))
        collected["s2date"].append(s2date.astype(float))

    def cat(k):
        return np.concatenate(collected[k])

    stats = {
        "S2_bands": {b: _stats_of(cat(f"S2_{b}")) for b in S2_ORDER},
        "ALOS_bands": {b: _stats_of(cat(b)) for b in ALOS_ORDER},
        "CH": {"ch": _stats_of(cat("ch")), "std": _stats_of(cat("std"))},
        "DEM": _stats_of(cat("dem")),
        "Sentinel_metadata": {"S2_date": _stats_of(cat("s2date"))},
        "GEDI": {"agbd": _stats_of(cat("agbd")), "date": _stats_of(cat("gdate"))},
    }

    if lite:
        files = _write_lite(root, per_tile, split_tiles, stats, p)
        return {
            "files": files,
            "statistics": root / LITE_STATS_FILE,
            "splits": None,
            "split_tiles": split_tiles,
            "n_patches": n * n_tiles,
            "noise_floor_rmse": _floors(per_tile, cond_mean, split_tiles),
            "truth": cond_mean,
        }
    files = []
    for fi in range(n_files):
        path = root / f"data_subset-{year}-v4_{fi}-20.h5"
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for ti, tile in enumerate(tiles):
                if ti % n_files != fi:
                    continue
                d = per_tile[tile]
                g = f.create_group(tile)

                def ds(parent, name, arr, dtype, chunk):
                    arr = np.asarray(arr).astype(dtype)
                    return parent.create_dataset(
                        name,
                        data=arr,
                        dtype=dtype,
                        compression="gzip",
                        chunks=chunk,
                        maxshape=(None, *arr.shape[1:]),
                    )

                dset = ds(g, "S2_bands", d["S2_bands"], np.uint16, (1, p, p, 12))
                dset.attrs["order"] = S2_ORDER
                ds(g, "S2_SCL", d["S2_SCL"], np.uint8, (1, p, p))
                dset = ds(g, "ALOS_bands", d["ALOS_bands"], np.uint16, (1, p, p, 2))
                dset.attrs["order"] = ALOS_ORDER
                meta = g.create_group("Sentinel_metadata")
                meta_vals = {
                    "vegetation_score": np.full(n, 96),
                    "date": d["s2date"],
                    "pbn": np.where(d["boa"] == 1, 400, 213),
                    "ron": rng.integers(1, 143, n),
                    "boa_offset": d["boa"],
                }
                for k, dt in S2_META_ATTRS.items():
                    ds(meta, f"S2_{k}", meta_vals[k], dt, (1,))
                gedi = g.create_group("GEDI")
                for k, dt in GEDI_ATTRS.items():
                    ds(gedi, k, d["gedi"][k], dt, (1,))
                chg = g.create_group("CH")
                ds(chg, "ch", d["ch"], np.uint8, (1, p, p))
                ds(chg, "std", d["std"], np.uint8, (1, p, p))
                ds(g, "LC", d["LC"], np.uint8, (1, p, p, 2))
                ds(g, "DEM", d["DEM"], np.int16, (1, p, p))
        files.append(path)

    splits = {k: list(v) for k, v in split_tiles.items()}
    if extra_split_tiles:  # the real split file lists tiles of the whole dataset, not only those in the files
        for k, extra in zip(SPLITS, ("32TMT", "20MQE", "48PWV")):
            splits[k].append(extra)
    stats_path = root / STATS_FILES[0]
    splits_path = root / SPLITS_FILE
    with atomic_path(stats_path) as tmp:
        tmp.write_bytes(pickle.dumps(stats))
    with atomic_path(splits_path) as tmp:
        tmp.write_bytes(pickle.dumps(splits))
    return {
        "files": files,
        "statistics": stats_path,
        "splits": splits_path,
        "split_tiles": split_tiles,
        "n_patches": n * n_tiles,
        "noise_floor_rmse": _floors(per_tile, cond_mean, split_tiles),
        "truth": cond_mean,
    }


def sample_truth(ch_center: np.ndarray) -> np.ndarray:
    """The look-alike's noise-free AGBD (Mg/ha) of a patch from its centre canopy height (m):
    ``450 * (1 - exp(-2 h**1.6 / 450))`` (a saturating allometry)."""
    h = np.asarray(ch_center, dtype=np.float64)
    return 450 * (1 - np.exp(-2.0 * h**1.6 / 450))


def _floors(per_tile, cond_mean, split_tiles) -> dict[str, float]:
    out = {}
    for split, tiles in split_tiles.items():
        if not tiles:
            continue
        lab = np.concatenate([per_tile[t]["gedi"]["agbd"].astype(np.float64) for t in tiles])
        cm = np.concatenate([cond_mean[t] for t in tiles])
        out[split] = float(np.sqrt(np.mean((lab - cm) ** 2)))
    return out


def _write_lite(root: Path, per_tile, split_tiles, stats, p) -> list[Path]:
    """AGBD-Lite layout: one flat file per split (card of prs-eth/AGBD-Lite), statistics without CH."""
    import h5py

    from terracarbon.utils import atomic_path

    files = []
    gedi_keys = ["agbd", "rh98", "lat_decimal", "lat_offset", "lon_decimal", "lon_offset", "pft_class", "region_cla"]
    for split, tiles in split_tiles.items():
        if not tiles:
            continue
        path = root / LITE_FILES[split]

        def cat(key, sub=None, tiles=tiles):
            return np.concatenate([(per_tile[t][key] if sub is None else per_tile[t][key][sub]) for t in tiles])

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            d = f.create_dataset("S2_bands", data=cat("S2_bands").astype(np.uint16), chunks=(1, p, p, 12))
            d.attrs["order"] = S2_ORDER
            d = f.create_dataset("ALOS_bands", data=cat("ALOS_bands").astype(np.uint16), chunks=(1, p, p, 2))
            d.attrs["order"] = ALOS_ORDER
            f.create_dataset("DEM", data=cat("DEM").astype(np.int16), chunks=(1, p, p))
            f.create_dataset("LC", data=cat("LC").astype(np.uint8), chunks=(1, p, p, 2))
            g = f.create_group("GEDI")
            for k in gedi_keys:
                g.create_dataset(k, data=cat("gedi", k).astype(GEDI_ATTRS[k]))
            m = f.create_group("Sentinel_metadata")
            m.create_dataset("S2_date", data=cat("s2date").astype(np.int16))
            m.create_dataset("S2_boa_offset", data=cat("boa").astype(np.uint8))
            region = np.concatenate([np.full(len(per_tile[t]["boa"]), _TILES.index(t)) for t in tiles])
            f.create_dataset("region", data=region.astype(np.uint8))
        files.append(path)
    lite_stats = {k: v for k, v in stats.items() if k != "CH"}
    lite_stats["GEDI"] = {"agbd": stats["GEDI"]["agbd"], "rh98": stats["GEDI"]["agbd"]}
    with atomic_path(root / LITE_STATS_FILE) as tmp:
        tmp.write_bytes(pickle.dumps(lite_stats))
    return files


__all__ = [
    "ALL_BANDS",
    "AGBDDataset",
    "GEDI_ATTRS",
    "NODATAVALS",
    "S2_ORDER",
    "alos_dn",
    "alos_gamma0_db",
    "decode_lat_lon",
    "encode_coords",
    "encode_lc",
    "normalize_data",
    "read_splits",
    "read_statistics",
    "s2_reflectance",
    "write_agbd_sample",
    "sample_truth",
    "ACCEPTED_BANDS",
    "DATE_BANDS",
    "LC_ONEHOT_BANDS",
    "build_index",
    "encode_doy",
    "onehot_lc",
    "is_lite",
]
