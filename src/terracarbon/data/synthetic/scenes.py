"""Seeded synthetic scenes: the embedded demo data and the accuracy testbed for biomass mapping.

A scene is a folder holding

``stack.tif``
    12-band float32 GeoTIFF, band order :data:`BANDS` =
    ``["B02","B03","B04","B08","B11","B12","HH","HV","CH","CH_STD","DEM","LC"]``:
    Sentinel-2 L2A-like surface reflectance (0-1), PALSAR-2-like L-band gamma0 backscatter (dB),
    canopy height and its standard deviation (m, a Lang et al. style product *with* error),
    elevation (m) and land-cover class ids (:data:`LC_CLASSES`). UTM CRS (EPSG:32722 by default), 10 m pixels,
    nodata ``NaN``.
``agb.tif``
    the true aboveground biomass density (Mg/ha, float32, nodata NaN).
``labels.tif``
    sparse GEDI-L4A-like labels (Mg/ha, float32, NaN = unlabelled): 25 m footprints (every pixel whose centre lies
    within 12.5 m of a shot centre, 2-5 px at 10 m) every 60 m along the eight beams (600 m apart) of a few
    diagonal orbit passes, until ``label_fraction`` of the pixels are labelled. Each footprint's label is the mean true
    AGB over the footprint times a lognormal, mean-one multiplicative error (``label_noise`` = sigma of log, 0.25).
``aoi.geojson``
    a sample polygon inside the scene, in EPSG:4326 (exercises reprojection).
``parcels.geojson``
    four parcels (``parcel_id``, ``name``) inside the scene, EPSG:4326 (multi-polygon AOI for per-polygon stocks).
``scene.json``
    everything about the scene: seed, region, CRS, transform, bands, class names, the generating parameters and the
    *label noise floor* (RMSE between the noisy labels and the true AGB at labelled pixels): no model trained on these
    labels can be expected to beat it when scored against labels.

The true AGB is a known non-trivial function of the stack: a saturating allometry of the *true* canopy height,
``AGB = f_lc * Amax * (1 - exp(-a * CH**b / Amax)) + base_lc``, scaled by a wood-density field (weakly visible in SWIR
and HV) and by elevation. The observed ``CH`` band carries spatially correlated error (of size ``CH_STD``), so the
spectral and SAR bands carry information beyond CH. ``region`` (0..3, see :data:`REGIONS`) changes the allometry, the
land-cover mix, canopy heights and the sensor offsets/gains, for eco-region transfer experiments.

Everything is a function of ``(seed, region, size, ...)``: the same arguments give byte-identical GeoTIFFs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import write_geotiff
from terracarbon.utils import atomic_write_text

BANDS: list[str] = ["B02", "B03", "B04", "B08", "B11", "B12", "HH", "HV", "CH", "CH_STD", "DEM", "LC"]
"""Band order of ``stack.tif``."""

BAND_UNITS: dict[str, str] = {
    **{b: "reflectance" for b in ["B02", "B03", "B04", "B08", "B11", "B12"]},
    "HH": "dB",
    "HV": "dB",
    "CH": "m",
    "CH_STD": "m",
    "DEM": "m",
    "LC": "class",
}

LC_CLASSES: dict[int, str] = {1: "forest", 2: "shrub", 3: "grass", 4: "crop", 5: "water", 6: "urban"}
"""Land-cover class ids of the ``LC`` band (0 is never used; nodata pixels are NaN)."""

FOREST, SHRUB, GRASS, CROP, WATER, URBAN = 1, 2, 3, 4, 5, 6

DEFAULT_CRS = "EPSG:32722"
PIXEL_SIZE = 10.0

# Per-region parameters. ``mix`` is the share of forest/shrub/grass/crop/water/urban; ``ch`` the mean canopy height of
# forest (m); allometry ``a``, ``b``, ``amax``; ``s2_gain``/``s2_offset`` sensor calibration/haze differences,
# ``sar_offset`` (dB) soil-moisture/calibration difference; ``hv_k`` the AGB scale of L-band HV saturation.
REGIONS: dict[int, dict[str, Any]] = {
    0: {
        "name": "tropical_moist",
        "mix": [0.55, 0.10, 0.12, 0.12, 0.07, 0.04],
        "ch": 28.0,
        "a": 2.0,
        "b": 1.6,
        "amax": 450.0,
        "s2_gain": 1.0,
        "s2_offset": 0.0,
        "sar_offset": 0.0,
        "hv_k": 120.0,
        "dem_base": 120.0,
        "origin": (350000.0, 9650000.0),
    },
    1: {
        "name": "temperate",
        "mix": [0.40, 0.08, 0.15, 0.25, 0.06, 0.06],
        "ch": 22.0,
        "a": 4.2,
        "b": 1.45,
        "amax": 700.0,
        "s2_gain": 1.08,
        "s2_offset": 0.01,
        "sar_offset": 1.5,
        "hv_k": 150.0,
        "dem_base": 450.0,
        "origin": (420000.0, 9550000.0),
    },
    2: {
        "name": "boreal",
        "mix": [0.58, 0.16, 0.08, 0.03, 0.13, 0.02],
        "ch": 14.0,
        "a": 3.2,
        "b": 1.35,
        "amax": 250.0,
        "s2_gain": 0.9,
        "s2_offset": -0.004,
        "sar_offset": -1.5,
        "hv_k": 90.0,
        "dem_base": 250.0,
        "origin": (480000.0, 9750000.0),
    },
    3: {
        "name": "dry_tropical",
        "mix": [0.22, 0.30, 0.28, 0.12, 0.03, 0.05],
        "ch": 11.0,
        "a": 1.5,
        "b": 1.75,
        "amax": 220.0,
        "s2_gain": 1.15,
        "s2_offset": 0.015,
        "sar_offset": -2.0,
        "hv_k": 100.0,
        "dem_base": 700.0,
        "origin": (560000.0, 9350000.0),
    },
}
"""Synthetic eco-regions: differing allometry, class mix, canopy height and sensor offsets."""

# AGB multiplier / herbaceous base per class (Mg/ha)
_LC_FACTOR = {FOREST: 1.0, SHRUB: 0.75, GRASS: 0.5, CROP: 0.35, WATER: 0.0, URBAN: 0.6}
_LC_BASE = {FOREST: 0.0, SHRUB: 4.0, GRASS: 3.0, CROP: 2.5, WATER: 0.0, URBAN: 1.0}

# Endmember spectra B02 B03 B04 B08 B11 B12
_CANOPY = np.array([0.022, 0.045, 0.026, 0.32, 0.150, 0.066])
_GRASS = np.array([0.040, 0.070, 0.052, 0.30, 0.235, 0.128])
_SOIL = np.array([0.080, 0.110, 0.140, 0.22, 0.300, 0.240])
_WATER = np.array([0.050, 0.045, 0.030, 0.015, 0.008, 0.005])
_URBAN = np.array([0.100, 0.110, 0.120, 0.170, 0.220, 0.210])

GEDI_FOOTPRINT_M = 25.0
GEDI_SHOT_SPACING_M = 60.0
GEDI_BEAM_SPACING_M = 600.0
GEDI_BEAMS = 8


@dataclass
class Scene:
    """A generated (or loaded) synthetic scene folder; paths are absolute."""

    root: Path
    stack: Path
    agb: Path
    labels: Path
    aoi: Path
    meta: Path
    parcels: Path | None = None
    bands: list[str] = field(default_factory=lambda: list(BANDS))
    noise_floor_rmse: float = float("nan")
    seed: int = 0
    region: int = 0
    size: int = 0
    crs: str = DEFAULT_CRS

    @classmethod
    def load(cls, root: str | os.PathLike) -> Scene:
        """Open a scene folder written by :func:`make_scene` (reads its ``scene.json``)."""
        root = Path(root).resolve()
        meta_path = root / "scene.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise InputError(meta_path, "not a terracarbon scene folder (scene.json missing)") from None
        except (OSError, ValueError) as exc:
            raise InputError(meta_path, f"unreadable scene metadata ({exc})") from exc
        files = meta.get("files", {})
        parcels = root / files["parcels"] if files.get("parcels") else None
        return cls(
            root=root,
            stack=root / files.get("stack", "stack.tif"),
            agb=root / files.get("agb", "agb.tif"),
            labels=root / files.get("labels", "labels.tif"),
            aoi=root / files.get("aoi", "aoi.geojson"),
            meta=meta_path,
            parcels=parcels,
            bands=list(meta.get("bands", BANDS)),
            noise_floor_rmse=float(meta.get("noise_floor_rmse", float("nan"))),
            seed=int(meta.get("seed", 0)),
            region=int(meta.get("region", 0)),
            size=int(meta.get("size", 0)),
            crs=str(meta.get("crs", DEFAULT_CRS)),
        )

    def metadata(self) -> dict[str, Any]:
        """The parsed ``scene.json``."""
        return json.loads(self.meta.read_text())

    def read_stack(self) -> np.ndarray:
        """The 12×H×W float32 stack (NaN = nodata)."""
        return _read(self.stack)

    def read_agb(self) -> np.ndarray:
        """True AGB, H×W float32 Mg/ha (NaN = nodata)."""
        return _read(self.agb)[0]

    def read_labels(self) -> np.ndarray:
        """Sparse labels, H×W float32 Mg/ha (NaN = unlabelled)."""
        return _read(self.labels)[0]


def _read(path: Path) -> np.ndarray:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.read()
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(path, f"cannot read raster ({exc})") from exc


# --------------------------------------------------------------------------------------------------------------------
# random fields


def _field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean unit-variance gaussian random field with gaussian correlation of ``sigma`` pixels (FFT filter)."""
    h, w = shape
    # pad so the periodic FFT filter does not wrap correlation across opposite edges
    from scipy.fft import next_fast_len

    pad = int(min(3 * sigma, 2 * max(h, w)))
    ph, pw = next_fast_len(h + pad, real=True), next_fast_len(w + pad, real=True)
    noise = rng.standard_normal((ph, pw))
    if sigma > 0:
        fy = np.fft.fftfreq(ph)[:, None]
        fx = np.fft.rfftfreq(pw)[None, :]
        kernel = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
        noise = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(ph, pw))
    out = noise[:h, :w]
    out = out - out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def _top(x: np.ndarray, frac: float) -> np.ndarray:
    """Mask of the ``frac`` share of elements with the highest values (threshold by partition, O(n))."""
    flat = x.ravel()
    k = int(round(frac * flat.size))
    if k <= 0:
        return np.zeros(x.shape, dtype=bool)
    if k >= flat.size:
        return np.ones(x.shape, dtype=bool)
    thr = np.partition(flat, flat.size - k)[flat.size - k]
    return x >= thr


def _uniform(x: np.ndarray) -> np.ndarray:
    """Monotone map of a roughly gaussian field to (0, 1) (normal CDF of its z-score)."""
    from scipy.special import ndtr

    return ndtr((x - x.mean()) / (x.std() + 1e-12))


# --------------------------------------------------------------------------------------------------------------------
# generator


def region_params(region: int) -> dict[str, Any]:
    """Parameters of eco-region ``region`` (0..3)."""
    if region not in REGIONS:
        raise ConfigError(f"region must be one of {sorted(REGIONS)}, got {region!r}")
    return dict(REGIONS[region])


def agb_allometry(ch: np.ndarray, lc: np.ndarray, region: int = 0) -> np.ndarray:
    """Deterministic part of the true AGB (Mg/ha) from true canopy height and class (no wood-density/DEM terms)."""
    p = region_params(region)
    ch = np.maximum(np.asarray(ch, dtype=np.float64), 0.0)
    pot = p["a"] * ch ** p["b"]
    sat = p["amax"] * (1.0 - np.exp(-pot / p["amax"]))
    lc = np.asarray(lc)
    fac = np.zeros_like(sat)
    base = np.zeros_like(sat)
    for k in LC_CLASSES:
        m = lc == k
        fac[m] = _LC_FACTOR[k]
        base[m] = _LC_BASE[k]
    return fac * sat + base


def _generate(size: int, seed: int, region: int, nodata_fraction: float) -> dict[str, np.ndarray]:
    p = region_params(region)
    rng = np.random.default_rng([int(seed), int(region), 7919])
    shape = (size, size)
    f = lambda s: _field(rng, shape, s)  # noqa: E731

    # --- terrain and land cover ---
    relief = f(60.0)
    dem = p["dem_base"] + 180.0 * relief + 30.0 * f(15.0) + 3.0 * f(2.0)
    dem_n = (dem - dem.mean()) / (dem.std() + 1e-9)
    mix = np.asarray(p["mix"], dtype=np.float64)
    mix = mix / mix.sum()
    lc = np.zeros(shape, dtype=np.uint8)
    # water in valleys
    wet = relief + 0.35 * f(8.0)
    water = _top(-wet, mix[4])
    lc[water] = WATER
    # urban in blobs
    urb = f(10.0) + 0.3 * f(3.0)
    urb[water] = -np.inf
    urban = _top(urb, mix[5])
    lc[urban] = URBAN
    # crops in blocky fields (40 px parcels), preferring flat low land
    nb = int(math.ceil(size / 40)) + 1
    blocks = np.kron(rng.standard_normal((nb, nb)), np.ones((40, 40)))
    off = rng.integers(0, 40, size=2)
    blocks = blocks[off[0] : off[0] + size, off[1] : off[1] + size]
    cropscore = blocks + 0.8 * f(40.0) - 0.4 * dem_n
    free = lc == 0
    cropscore[~free] = -np.inf
    crop = _top(cropscore, mix[3])
    lc[crop] = CROP
    # natural vegetation by a potential field: forest > shrub > grass
    veg = f(18.0) + 0.4 * f(5.0) + 0.25 * dem_n
    free = lc == 0
    nf = int(free.sum())
    if nf:
        rest = mix[:3] / mix[:3].sum()
        vf = veg[free]
        forest = _top(vf, rest[0])
        grass = _top(-vf, rest[2]) & ~forest
        lc[free] = np.where(forest, FOREST, np.where(grass, GRASS, SHRUB))
    vigour = _uniform(veg)

    # --- true canopy height ---
    tex = f(3.0)
    ch = np.zeros(shape)
    m = lc == FOREST
    gaps = f(1.5) < -1.9
    ch[m] = p["ch"] * (0.7 + 0.5 * vigour[m]) * np.exp(0.18 * tex[m])
    ch[m & gaps] *= 0.3
    m = lc == SHRUB
    ch[m] = (2.0 + 3.0 * vigour[m]) * np.exp(0.25 * tex[m])
    m = lc == GRASS
    ch[m] = 0.3 + 0.4 * np.abs(tex[m])
    growth = _uniform(blocks + 0.2 * f(4.0))
    m = lc == CROP
    ch[m] = 0.2 + 1.5 * growth[m]
    m = lc == URBAN
    ch[m] = 9.0 * np.maximum(f(2.0)[m] - 0.8, 0.0)
    ch = np.clip(ch, 0.0, 65.0)

    # --- true AGB ---
    wood = f(25.0)  # wood density anomaly, weakly visible in SWIR and HV
    agb = agb_allometry(ch, lc, region) * (1.0 + 0.12 * wood) * (1.0 - 0.06 * dem_n)
    agb = np.maximum(agb, 0.0)

    # --- canopy height product with error ---
    ch_std = 0.8 + 0.12 * ch + 0.4 * np.abs(f(6.0))
    ch_std[lc == WATER] = 0.5
    ch_obs = np.maximum(ch + 0.7 * ch_std * f(4.0), 0.0)

    # --- Sentinel-2 reflectance ---
    fc = 1.0 - np.exp(-ch / 6.0)  # fractional canopy cover
    fc[(lc == GRASS) | (lc == CROP)] = 0.0
    under = _GRASS[:, None, None] * np.ones((6, *shape))
    cropmix = (1 - growth)[None] * _SOIL[:, None, None] + growth[None] * (
        _GRASS * [1, 1, 0.8, 1.2, 0.9, 0.85]
    )[:, None, None]
    under = np.where((lc == CROP)[None], cropmix, under)
    canopy = _CANOPY[:, None, None] * np.ones((6, *shape))
    canopy[4] *= 1.0 - 0.08 * wood  # denser wood, wetter canopy: darker SWIR
    canopy[5] *= 1.0 - 0.10 * wood
    shade = 1.0 - 0.3 * fc * np.minimum(ch / 40.0, 1.0)
    s2 = fc[None] * canopy + (1.0 - fc[None]) * under
    s2[:4] *= shade[None]
    s2[4:6] *= shade[None] ** 0.5
    s2 = np.where((lc == WATER)[None], _WATER[:, None, None], s2)
    s2 = np.where((lc == URBAN)[None] & (fc[None] < 0.3), _URBAN[:, None, None], s2)
    s2 *= np.exp(0.06 * f(2.0))[None] * np.exp(0.03 * rng.standard_normal((6, *shape)))
    s2 += 0.003 * rng.standard_normal((6, *shape))
    s2 = s2 * p["s2_gain"] + p["s2_offset"] * np.array([1.0, 0.8, 0.6, 0.3, 0.1, 0.05])[:, None, None]
    s2 = np.clip(s2, 1e-4, 1.0)

    # --- PALSAR-2 L-band backscatter (dB), saturating with AGB ---
    moist = f(30.0)
    sat = 1.0 - np.exp(-agb / p["hv_k"])
    hv = -23.0 + 11.0 * sat + 0.5 * wood + 0.8 * moist
    hh = -14.0 + 7.0 * sat + 1.2 * moist + 0.3 * dem_n
    hh[lc == WATER], hv[lc == WATER] = -24.0, -30.0
    hh[lc == URBAN] = -4.0 + 2.0 * f(3.0)[lc == URBAN]
    hv[lc == URBAN] = np.maximum(hv[lc == URBAN], -12.0)
    hh = hh + p["sar_offset"] + 0.9 * rng.standard_normal(shape)
    hv = hv + p["sar_offset"] + 0.9 * rng.standard_normal(shape)

    stack = np.concatenate(
        [s2, hh[None], hv[None], ch_obs[None], ch_std[None], dem[None], lc[None].astype(np.float64)], axis=0
    ).astype(np.float32)
    agb = agb.astype(np.float32)

    # --- nodata: a border strip plus cloud holes ---
    nodata = np.zeros(shape, dtype=bool)
    if nodata_fraction > 0:
        border = max(1, int(round(size * nodata_fraction / 3.0)))
        nodata[:, :border] = True  # swath edge
        remaining = nodata_fraction * size * size - nodata.sum()
        if remaining > 0:
            clouds = f(6.0)
            clouds[nodata] = -np.inf
            k = int(remaining)
            thr = np.partition(clouds.ravel(), clouds.size - k)[clouds.size - k] if k > 0 else np.inf
            nodata |= clouds >= thr
        stack[:, nodata] = np.nan
        agb[nodata] = np.nan
    return {"stack": stack, "agb": agb, "ch_true": ch, "lc": lc, "nodata": nodata, "rng": rng}


def _gedi_labels(
    agb: np.ndarray,
    nodata: np.ndarray,
    rng: np.random.Generator,
    label_fraction: float,
    label_noise: float,
    pixel_size: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sparse footprint labels along GEDI-like orbit passes (8 beams 600 m apart, shots every 60 m)."""
    h, w = agb.shape
    labels = np.full((h, w), np.nan, dtype=np.float32)
    target = int(round(label_fraction * h * w))
    r_px = GEDI_FOOTPRINT_M / 2.0 / pixel_size
    step = GEDI_SHOT_SPACING_M / pixel_size
    beam_gap = GEDI_BEAM_SPACING_M / pixel_size
    diag = math.hypot(h, w)
    fp_true = np.full((h, w), np.nan, dtype=np.float64)  # true footprint mean, for the noise-floor breakdown
    labelled = 0
    n_shots = 0
    n_passes = 0
    rr = int(math.ceil(r_px))
    dy_, dx_ = np.mgrid[-rr : rr + 1, -rr : rr + 1]
    while labelled < target and n_passes < 200:
        n_passes += 1
        # heading: ISS orbit at 51.6 deg gives tracks ~35-55 deg off north, ascending (NE) or descending (SE)
        heading = math.radians(rng.uniform(35.0, 55.0)) * (1 if rng.random() < 0.5 else -1)
        ux, uy = math.sin(heading), -math.cos(heading)  # along-track unit vector (row axis points south)
        nx, ny = -uy, ux  # across-track
        cx, cy = w / 2.0, h / 2.0
        centre_off = rng.uniform(-beam_gap / 2.0, beam_gap / 2.0)
        phase = rng.uniform(0.0, step)
        for b in range(GEDI_BEAMS):
            if labelled >= target:
                break
            off = centre_off + (b - (GEDI_BEAMS - 1) / 2.0) * beam_gap
            for t in np.arange(-diag / 2.0 + phase, diag / 2.0, step):
                if labelled >= target:
                    break
                x = cx + off * nx + t * ux
                y = cy + off * ny + t * uy
                if not (-r_px <= x < w + r_px and -r_px <= y < h + r_px):
                    continue
                if rng.random() < 0.1:  # shots lost to clouds / quality flags
                    continue
                # pixel centres (i+0.5, j+0.5) within the footprint radius
                i0, j0 = int(math.floor(y)), int(math.floor(x))
                ii = i0 + dy_
                jj = j0 + dx_
                d2 = (ii + 0.5 - y) ** 2 + (jj + 0.5 - x) ** 2
                sel = (d2 <= r_px**2) & (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
                if not sel.any():
                    continue
                ii, jj = ii[sel], jj[sel]
                if nodata[ii, jj].any() or not np.isnan(labels[ii, jj]).all():
                    continue
                true_mean = float(agb[ii, jj].mean())
                err = math.exp(rng.normal(-0.5 * label_noise**2, label_noise))
                labels[ii, jj] = true_mean * err
                fp_true[ii, jj] = true_mean
                labelled += ii.size
                n_shots += 1
    m = ~np.isnan(labels)
    diff = (labels[m].astype(np.float64) - agb[m].astype(np.float64)) if m.any() else np.zeros(0)
    info = {
        "n_labelled_pixels": int(m.sum()),
        "label_fraction": float(m.sum() / (h * w)),
        "n_footprints": n_shots,
        "n_orbit_passes": n_passes,
        "noise_floor_rmse": float(np.sqrt(np.mean(diff**2))) if diff.size else float("nan"),
        "noise_floor_mae": float(np.mean(np.abs(diff))) if diff.size else float("nan"),
        "noise_floor_bias": float(np.mean(diff)) if diff.size else float("nan"),
        "noise_floor_footprint_rmse": float(np.sqrt(np.mean((fp_true[m] - agb[m]) ** 2)))
        if m.any()
        else float("nan"),
        "label_mean": float(labels[m].mean()) if m.any() else float("nan"),
    }
    return labels, info


# --------------------------------------------------------------------------------------------------------------------
# writing


def _write_tif(path: Path, array: np.ndarray, *, crs: str, transform, band_descriptions, tags=None) -> None:
    """Write a float32 GeoTIFF (nodata NaN) atomically through the shared writer (tiled, compressed)."""
    write_geotiff(
        path,
        np.asarray(array, dtype=np.float32),
        crs=crs,
        transform=transform,
        nodata=float("nan"),
        band_descriptions=band_descriptions,
        tags=tags,
        cog=False,  # tiled + DEFLATE; overviews are not needed for model inputs and cost 60 % of the time
    )


def _polygon_utm(
    cx: float, cy: float, radius: float, n: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = radius * rng.uniform(0.65, 1.0, n)
    pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(ang, rad)]
    return pts + [pts[0]]


def _to_lonlat(points: list[tuple[float, float]], crs: str) -> list[list[float]]:
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs, ys = zip(*points)
    lon, lat = tr.transform(xs, ys)
    return [[round(float(a), 8), round(float(b), 8)] for a, b in zip(lon, lat)]


def _feature_collection(features: list[dict]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1) + "\n"


def make_scene(
    out_dir: str | os.PathLike,
    *,
    size: int = 512,
    seed: int = 0,
    region: int = 0,
    label_fraction: float = 0.015,
    label_noise: float = 0.25,
    nodata_fraction: float = 0.0,
    crs: str = DEFAULT_CRS,
    parcels: bool = True,
) -> Scene:
    """Generate a synthetic scene into ``out_dir`` (created if needed) and return it.

    Parameters
    ----------
    size: scene width and height in pixels (10 m); at least 32.
    seed: random seed; the same arguments give byte-identical GeoTIFFs.
    region: eco-region 0..3 (:data:`REGIONS`), changing allometry, land-cover mix and sensor offsets.
    label_fraction: share of pixels carrying a GEDI-like label (about 1-2 % is realistic).
    label_noise: sigma of the log of the multiplicative lognormal label error (0.25 ≈ 25 %).
    nodata_fraction: share of pixels set to nodata (NaN): a swath-edge strip on the left plus cloud holes.
    crs: a projected CRS in metres for the scene (default UTM 22S, EPSG:32722).
    parcels: also write ``parcels.geojson`` (four polygons) for per-polygon stocks.
    """
    from affine import Affine

    if not isinstance(size, int) or size < 32:
        raise ConfigError(f"size must be an integer >= 32, got {size!r}")
    if not 0.0 < label_fraction < 0.5:
        raise ConfigError(f"label_fraction must be in (0, 0.5), got {label_fraction!r}")
    if not 0.0 <= nodata_fraction < 0.9:
        raise ConfigError(f"nodata_fraction must be in [0, 0.9), got {nodata_fraction!r}")
    if label_noise < 0:
        raise ConfigError(f"label_noise must be >= 0, got {label_noise!r}")
    p = region_params(region)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()

    g = _generate(size, seed, region, nodata_fraction)
    rng = g["rng"]
    labels, info = _gedi_labels(g["agb"], g["nodata"], rng, label_fraction, label_noise, PIXEL_SIZE)

    x0, y0 = p["origin"]
    transform = Affine(PIXEL_SIZE, 0.0, x0, 0.0, -PIXEL_SIZE, y0)
    common = {"crs": crs, "transform": transform}
    units = json.dumps(BAND_UNITS)
    _write_tif(
        out / "stack.tif",
        g["stack"],
        band_descriptions=BANDS,
        tags={
            "band_units": units,
            "lc_classes": json.dumps(LC_CLASSES),
            "generator": "terracarbon.data.synthetic.scenes",
        },
        **common,
    )
    _write_tif(out / "agb.tif", g["agb"], band_descriptions=["AGB"], tags={"units": "Mg/ha"}, **common)
    _write_tif(
        out / "labels.tif",
        labels,
        band_descriptions=["AGBD_GEDI"],
        tags={"units": "Mg/ha", "noise_floor_rmse": f"{info['noise_floor_rmse']:.6f}"},
        **common,
    )

    # AOI polygon (EPSG:4326) well inside the scene, and parcels
    ext = size * PIXEL_SIZE
    cx, cy = x0 + ext / 2.0, y0 - ext / 2.0
    aoi_pts = _polygon_utm(cx, cy, 0.32 * ext, 9, rng)
    aoi = {
        "type": "Feature",
        "properties": {"name": f"sample AOI (seed {seed}, region {region})"},
        "geometry": {"type": "Polygon", "coordinates": [_to_lonlat(aoi_pts, crs)]},
    }
    atomic_write_text(out / "aoi.geojson", _feature_collection([aoi]))
    parcels_name = None
    if parcels:
        feats = []
        q = ext / 4.0
        for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            pcx = x0 + q + 2 * q * j
            pcy = y0 - q - 2 * q * i
            pts = _polygon_utm(pcx, pcy, 0.8 * q, 6, rng)
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"parcel_id": k + 1, "name": f"parcel-{k + 1}"},
                    "geometry": {"type": "Polygon", "coordinates": [_to_lonlat(pts, crs)]},
                }
            )
        parcels_name = "parcels.geojson"
        atomic_write_text(out / parcels_name, _feature_collection(feats))

    agb = g["agb"]
    valid = ~np.isnan(agb)
    lc = g["lc"]
    meta = {
        "format": "terracarbon-scene/1",
        "generator": "terracarbon.data.synthetic.scenes.make_scene",
        "seed": seed,
        "region": region,
        "region_name": p["name"],
        "size": size,
        "crs": crs,
        "pixel_size_m": PIXEL_SIZE,
        "transform": list(transform)[:6],
        "bands": BANDS,
        "band_units": BAND_UNITS,
        "lc_classes": {str(k): v for k, v in LC_CLASSES.items()},
        "lc_fractions": {
            LC_CLASSES[k]: float(((lc == k) & valid).sum() / max(valid.sum(), 1)) for k in LC_CLASSES
        },
        "nodata": "nan",
        "nodata_fraction": float((~valid).mean()),
        "files": {
            "stack": "stack.tif",
            "agb": "agb.tif",
            "labels": "labels.tif",
            "aoi": "aoi.geojson",
            "parcels": parcels_name,
        },
        "agb_model": {
            "formula": "f_lc * amax * (1 - exp(-a * CH_true**b / amax)) + base_lc, "
            "times (1 + 0.12 * wood_density_anomaly) * (1 - 0.06 * dem_z)",
            "a": p["a"],
            "b": p["b"],
            "amax": p["amax"],
            "f_lc": {LC_CLASSES[k]: v for k, v in _LC_FACTOR.items()},
            "base_lc": {LC_CLASSES[k]: v for k, v in _LC_BASE.items()},
        },
        "sensor": {"s2_gain": p["s2_gain"], "s2_offset": p["s2_offset"], "sar_offset_db": p["sar_offset"]},
        "agb_mean": float(np.nanmean(agb)) if valid.any() else float("nan"),
        "agb_max": float(np.nanmax(agb)) if valid.any() else float("nan"),
        "labels": {
            "kind": "GEDI-L4A-like footprints",
            "footprint_diameter_m": GEDI_FOOTPRINT_M,
            "shot_spacing_m": GEDI_SHOT_SPACING_M,
            "beam_spacing_m": GEDI_BEAM_SPACING_M,
            "beams_per_pass": GEDI_BEAMS,
            "noise": "multiplicative lognormal, mean one",
            "label_noise_sigma_log": label_noise,
            "requested_label_fraction": label_fraction,
            **{k: v for k, v in info.items() if not k.startswith("noise_floor")},
        },
        "noise_floor_rmse": info["noise_floor_rmse"],
        "noise_floor_mae": info["noise_floor_mae"],
        "noise_floor_bias": info["noise_floor_bias"],
        # part of the floor due to a 25 m footprint label standing for each 10 m pixel (no measurement error)
        "noise_floor_footprint_rmse": info["noise_floor_footprint_rmse"],
    }
    atomic_write_text(out / "scene.json", json.dumps(meta, indent=2) + "\n")
    return Scene.load(out)


def load_scene(path: str | os.PathLike) -> Scene:
    """Open a scene folder (alias of :meth:`Scene.load`)."""
    return Scene.load(path)


__all__ = [
    "BANDS",
    "BAND_UNITS",
    "LC_CLASSES",
    "REGIONS",
    "Scene",
    "agb_allometry",
    "load_scene",
    "make_scene",
    "region_params",
]
