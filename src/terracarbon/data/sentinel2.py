"""Readers of optical scenes for the stack builder: Sentinel-2 L2A (STAC item, SAFE folder, band folder) and HLS v2.0.

Each reader returns a :class:`Scene`: where every band's pixels are (a local file), how digital numbers (DN) become
surface reflectance (``reflectance = DN * scale + offset``), which DN is nodata, and the scene's cloud mask (SCL classes
or HLS Fmask bits). Nothing is read beyond metadata here; :mod:`terracarbon.data.stack` warps the pixels onto a grid.

Layouts read
------------
**STAC item** (``*.json``, read with pystac): assets keyed as Planetary Computer names them (``B01`` … ``B12``, ``B8A``,
``SCL``) or as Earth Search v1 does (``coastal``, ``blue``, ``green``, ``red``, ``rededge1..3``, ``nir``, ``nir08``,
``nir09``, ``swir16``, ``swir22``, ``scl``); a band is also recognised by its ``eo:bands`` name or common name, or by
the file name of its href (``B02.tif``). Hrefs of real items point to a bucket; they are resolved to local files, in
this order: a local path (relative hrefs are relative to the JSON), ``assets_dir / <href file name>``, or a file of
that name beside the JSON (so a downloaded Earth Search item folder, like ``../shared/data/real/s2/``, works as is).
JP2 assets (``blue-jp2``) are used only when no GeoTIFF asset gives the band.

**SAFE folder** (``S2?_MSIL2A_*.SAFE``): ``MTD_MSIL2A.xml`` at the top and
``GRANULE/<granule>/IMG_DATA/R10m|R20m|R60m/T<tile>_<date>_<band>_<res>.jp2``; each band is taken at its finest
resolution (B02-B04, B08 from R10m; B05-B07, B8A, B11, B12, SCL from R20m; B01, B09 from R60m). The JP2 files are read by
GDAL's JP2OpenJPEG driver, which rasterio's wheels include.

**Band folder**: files named ``B02.tif`` / ``*_B02_10m.jp2`` / ``*.B02.tif`` (one per band) plus ``SCL``; an
``MTD_MSIL2A.xml`` in the folder gives the offsets, else ``boa_offset`` (default 0) applies.

**HLS v2.0** (S30 or L30): ``HLS.S30.T<tile>.<date>.v2.0.B02.tif`` … plus ``.Fmask.tif`` in one folder.

Reflectance rules
-----------------
* L2A products: ``reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE``, DN 0 is nodata (ESA, *Sentinel-2
  Products Specification Document* / L2A Product Format Specification, and the processing-baseline 04.00 notice
  "Copernicus Sentinel-2 major products upgrade": BOA_ADD_OFFSET = -1000 for every band from baseline 04.00, reported in
  ``General_Info/Product_Image_Characteristics`` of ``MTD_MSIL2A.xml``).
* STAC: ``raster:bands`` ``scale``/``offset`` when the item has them; else ``s2:processing_baseline`` >= 04.00 means an
  offset of -1000 DN and < 04.00 none. Earth Search v1 items say in ``earthsearch:boa_offset_applied`` whether the
  offset was already applied to the pixels; its maintainers call that flag the truth where ``raster:bands`` still says
  ``offset: -0.1`` (github Element84/earth-search#9, cirrus-geo/cirrus-earth-search#21), so ``true`` means offset 0.
  Planetary Computer leaves the DN as ESA wrote them (github microsoft/PlanetaryComputer#134: harmonise by
  subtracting 1000 from baseline >= 04.00 scenes).
* HLS v2.0: int16 reflectance × 10,000 (scale 0.0001), fill -9999; Fmask bits (HLS v2.0 User Guide, Fmask table): bit 1
  cloud, bit 2 adjacent to cloud/shadow, bit 3 cloud shadow (bit 0 cirrus is reserved, bit 4 snow/ice, bit 5 water,
  bits 6-7 aerosol level). Bits 1-3 are masked by default, as NASA-IMPACT/hls-vi masks "cloud-like" pixels.

Scene classification (SCL) classes (ESA L2A algorithm): 0 no data, 1 saturated or defective, 2 dark area, 3 cloud
shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium probability, 9 cloud high probability,
10 thin cirrus, 11 snow. Masked by default: :data:`DEFAULT_SCL_MASK` = 0, 1, 3, 8, 9, 10.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from terracarbon.errors import ConfigError, InputError

S2_BANDS: list[str] = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
"""Sentinel-2 MSI band ids (B10 exists in L1C only)."""

DEFAULT_S2_BANDS: list[str] = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
"""The 12 L2A bands in AGBD's order (``S2_bands``), the default of a stack."""

EARTH_SEARCH_KEYS: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
"""Earth Search v1 asset keys (also its ``eo:bands`` names) -> band id."""

NATIVE_RESOLUTION: dict[str, int] = {
    **{b: 10 for b in ("B02", "B03", "B04", "B08")},
    **{b: 20 for b in ("B05", "B06", "B07", "B8A", "B11", "B12", "SCL")},
    **{b: 60 for b in ("B01", "B09", "B10")},
}
"""Native pixel size (m) of each band."""

SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}
DEFAULT_SCL_MASK: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
"""SCL classes made nodata by default: no data, defective, cloud shadow, cloud medium/high, thin cirrus."""

HLS_S30_NAMES: dict[str, str] = {
    "COASTAL_AEROSOL": "B01",
    "BLUE": "B02",
    "GREEN": "B03",
    "RED": "B04",
    "RED_EDGE_1": "B05",
    "RED_EDGE_2": "B06",
    "RED_EDGE_3": "B07",
    "NIR_BROAD": "B08",
    "NIR_NARROW": "B8A",
    "WATER_VAPOR": "B09",
    "CIRRUS": "B10",
    "SWIR_1": "B11",
    "SWIR_2": "B12",
}
"""HLS band names (as Prithvi / granite name their inputs) -> S30 (Sentinel-2) band id; Sentinel-2 L2A uses the same."""

HLS_L30_NAMES: dict[str, str] = {
    "COASTAL_AEROSOL": "B01",
    "BLUE": "B02",
    "GREEN": "B03",
    "RED": "B04",
    "NIR_NARROW": "B05",
    "SWIR_1": "B06",
    "SWIR_2": "B07",
    "CIRRUS": "B09",
    "THERMAL_INFRARED_1": "B10",
    "THERMAL_INFRARED_2": "B11",
}
"""HLS band names -> L30 (Landsat 8/9 OLI) band id (HLS v2.0 User Guide, band table)."""

HLS_BANDS: list[str] = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
"""The six HLS bands of Prithvi / granite-geospatial-biomass, the default of an HLS stack."""

FMASK_CLOUD, FMASK_ADJACENT, FMASK_SHADOW = 1, 2, 3
DEFAULT_FMASK_BITS: tuple[int, ...] = (FMASK_CLOUD, FMASK_ADJACENT, FMASK_SHADOW)
"""Fmask bits made nodata by default (cloud, adjacent to cloud/shadow, cloud shadow)."""

_BAND_RE = re.compile(r"(?:^|[._-])(B(?:0[1-9]|1[0-2]|8A)|SCL)(?:[._-]|$)", re.IGNORECASE)
_RASTER_EXT = (".tif", ".tiff", ".jp2", ".vrt")


@dataclass
class BandSource:
    """One band of a scene: a local raster file and how its DN become reflectance (``DN * scale + offset``)."""

    path: Path
    scale: float = 1e-4
    offset: float = 0.0
    nodata: float | None = 0
    band: int = 1


@dataclass
class MaskSource:
    """A scene's cloud mask: a raster of SCL classes or of HLS Fmask bits, and which values make a pixel nodata."""

    path: Path
    kind: str  # "scl" or "fmask"
    invalid_values: tuple[int, ...]
    max_value: int = 255

    def invalid(self, value: int) -> bool:
        """Whether a mask value makes the pixel nodata."""
        return int(value) in self.invalid_values


@dataclass
class Scene:
    """An optical scene ready to be warped onto a grid: bands by id, their reflectance scaling, and its cloud mask.

    ``aliases`` maps other names a stack may ask for (HLS names ``BLUE`` …) to this scene's band ids.
    """

    id: str
    source: Path
    bands: dict[str, BandSource]
    mask: MaskSource | None = None
    kind: str = "sentinel-2"
    processing_baseline: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    default_bands: list[str] = field(default_factory=lambda: list(DEFAULT_S2_BANDS))
    unresolved: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> BandSource:
        """The band a stack names ``name`` (a band id ``B8A`` or an alias ``NIR_NARROW``); a clear error if absent."""
        key = name.upper()
        bid = self.aliases.get(key, key)
        if bid in self.bands:
            return self.bands[bid]
        if bid in self.unresolved:
            raise InputError(self.source, f"band {name}: {self.unresolved[bid]}")
        have = sorted(self.bands)
        hint = f" ({key} is {bid} here)" if bid != key else ""
        raise InputError(self.source, f"has no band {name}{hint}; it has {', '.join(have) or 'none'}")


# ------------------------------------------------------------------------------------------------------------ helpers


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def baseline_offset(baseline: str | None) -> float:
    """The BOA offset in DN implied by a processing baseline: -1000 from 04.00 on, 0 before (or when unknown)."""
    if not baseline:
        return 0.0
    try:
        return -1000.0 if float(str(baseline).lstrip("N")) >= 4.0 else 0.0
    except ValueError:
        return 0.0


def scl_mask(path: str | Path, classes: Iterable[int] | None = None) -> MaskSource:
    """An SCL mask source masking ``classes`` (default :data:`DEFAULT_SCL_MASK`)."""
    cls = DEFAULT_SCL_MASK if classes is None else tuple(int(c) for c in classes)
    bad = [c for c in cls if c not in SCL_CLASSES]
    if bad:
        raise ConfigError(f"unknown SCL class(es) {bad}; classes are 0-11: {SCL_CLASSES}")
    return MaskSource(Path(path), "scl", tuple(sorted(set(cls))), max_value=255)


def fmask_mask(path: str | Path, bits: Iterable[int] | None = None) -> MaskSource:
    """An HLS Fmask mask source: a pixel is nodata when any of ``bits`` is set (default cloud, adjacent, shadow).

    The Fmask fill value 255 is nodata too.
    """
    bits = DEFAULT_FMASK_BITS if bits is None else tuple(int(b) for b in bits)
    if any(not 0 <= b <= 7 for b in bits):
        raise ConfigError(f"Fmask bits are 0-7, got {list(bits)}")
    m = sum(1 << b for b in bits)
    invalid = tuple(v for v in range(256) if v & m or v == 255)
    return MaskSource(Path(path), "fmask", invalid, max_value=255)


def band_id_of(name: str) -> str | None:
    """A band id (``B02``, ``B8A``, ``SCL``) from an asset key, an ``eo:bands`` name or a file name; None if none."""
    n = name.strip()
    if n.lower() in EARTH_SEARCH_KEYS:
        return EARTH_SEARCH_KEYS[n.lower()]
    up = n.upper()
    if up in S2_BANDS or up == "SCL":
        return up
    m = re.fullmatch(r"B(\d)", up)  # SAFE metadata spells B1..B9
    if m:
        return f"B0{m.group(1)}"
    stem = Path(n).name
    for suffix in _RASTER_EXT:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    found = _BAND_RE.findall(stem)
    return found[-1].upper() if found else None


# --------------------------------------------------------------------------------------------------------------- STAC


def _resolve_href(href: str, item_path: Path, assets_dir: Path | None, key: str) -> Path:
    parsed = urlparse(href)
    name = Path(parsed.path).name
    if parsed.scheme in ("", "file"):
        p = Path(parsed.path if parsed.scheme == "file" else href)
        p = p if p.is_absolute() else item_path.parent / p
        if p.exists():
            return p
    if assets_dir is not None and (Path(assets_dir) / name).exists():
        return Path(assets_dir) / name
    beside = item_path.parent / name
    if beside.exists():
        return beside
    where = f"{assets_dir} or " if assets_dir is not None else ""
    raise InputError(
        item_path,
        f"asset {key!r} points to {href}, which is not a local file; put {name} in {where}{item_path.parent} "
        "(or pass assets_dir / --assets DIR)",
    )


def read_stac_item(
    path: str | Path,
    *,
    assets_dir: str | Path | None = None,
    scl_classes: Iterable[int] | None = None,
    boa_offset: float | None = None,
) -> Scene:
    """Read a Sentinel-2 L2A STAC item (Planetary Computer or Earth Search v1 layout) into a :class:`Scene`.

    ``assets_dir``: a folder holding the asset files under their href file names. ``boa_offset`` (DN) overrides the
    offset rule of the module docstring. Raises :class:`InputError` naming the file for an item that is not valid STAC
    JSON, has no Sentinel-2 band assets, or whose assets cannot be found locally.
    """
    import pystac

    path = Path(path)
    if not path.exists():
        raise InputError(path, "STAC item does not exist")
    try:
        item = pystac.Item.from_file(str(path))
    except Exception as exc:
        raise InputError(path, f"not a readable STAC item ({exc})") from exc
    props = item.properties
    baseline = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    applied = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    found: dict[str, tuple[int, BandSource]] = {}
    unresolved: dict[str, str] = {}
    for key, asset in item.assets.items():
        media = (asset.media_type or "").lower()
        href_name = Path(urlparse(asset.href).path).name
        if not (media.startswith("image/") or href_name.lower().endswith(_RASTER_EXT)):
            continue
        extra = asset.extra_fields
        eo = extra.get("eo:bands") or []
        if len(eo) > 1:  # visual (TCI) and the like
            continue
        candidates = [key.removesuffix("-jp2")]
        if eo:
            candidates += [eo[0].get("name") or "", eo[0].get("common_name") or ""]
        candidates.append(href_name)
        bid = next((b for b in (band_id_of(c) for c in candidates if c) if b), None)
        if bid is None:
            continue
        rank = 1 if ("jp2" in media or key.endswith("-jp2")) else 0
        if bid in found and found[bid][0] <= rank:
            continue
        rb = (extra.get("raster:bands") or [{}])[0]
        if bid == "SCL":
            src = BandSource(Path(), 1.0, 0.0, rb.get("nodata", 0))
        else:
            scale = float(rb["scale"]) if rb.get("scale") is not None else 1e-4
            if boa_offset is not None:
                offset = float(boa_offset) * scale
            elif applied is True:
                offset = 0.0
            elif rb.get("offset") is not None:
                offset = float(rb["offset"])
            else:
                offset = baseline_offset(baseline) * scale
            src = BandSource(Path(), scale, offset, rb.get("nodata", 0))
        try:
            src.path = _resolve_href(asset.href, path, Path(assets_dir) if assets_dir else None, key)
        except InputError as exc:
            unresolved.setdefault(bid, exc.problem)
            continue
        found[bid] = (rank, src)
    bands = {b: s for b, (_, s) in found.items() if b != "SCL"}
    if not bands:
        why = f": {next(iter(unresolved.values()))}" if unresolved else " (B01…B12 / blue, nir, …)"
        raise InputError(path, f"STAC item has no usable Sentinel-2 band assets{why}")
    mask = scl_mask(found["SCL"][1].path, scl_classes) if "SCL" in found else None
    return Scene(
        id=item.id,
        source=path,
        bands=bands,
        mask=mask,
        processing_baseline=baseline,
        aliases=dict(HLS_S30_NAMES),
        unresolved={b: p for b, p in unresolved.items() if b not in found},
    )


# --------------------------------------------------------------------------------------------------------------- SAFE


@dataclass
class L2AMetadata:
    """What ``MTD_MSIL2A.xml`` says about radiometry: quantification value, BOA offsets per band id, baseline."""

    quantification: float = 10000.0
    offsets: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    product_uri: str | None = None


def read_mtd_msil2a(path: str | Path) -> L2AMetadata:
    """Parse ``MTD_MSIL2A.xml``: ``BOA_QUANTIFICATION_VALUE``, ``BOA_ADD_OFFSET`` per band, ``PROCESSING_BASELINE``.

    Band indexes of ``BOA_ADD_OFFSET band_id`` are mapped to band names through ``Spectral_Information`` (``bandId`` ->
    ``physicalBand``), falling back to ESA's fixed order 0 = B1 … 8 = B8A … 12 = B12. Products before baseline 04.00
    have no offset list (offset 0).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(path, f"not a readable MTD_MSIL2A.xml ({exc})") from exc
    meta = L2AMetadata()
    index_to_band = dict(enumerate(S2_BANDS))
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "Spectral_Information" and el.get("bandId") is not None and el.get("physicalBand"):
            bid = band_id_of(el.get("physicalBand"))
            if bid:
                index_to_band[int(el.get("bandId"))] = bid
    for el in root.iter():
        tag, text = _local(el.tag), (el.text or "").strip()
        if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and text:
            meta.quantification = float(text)
        elif tag == "PROCESSING_BASELINE" and text:
            meta.baseline = text
        elif tag == "PRODUCT_URI" and text:
            meta.product_uri = text
    for el in root.iter():
        if _local(el.tag) == "BOA_ADD_OFFSET" and el.get("band_id") is not None:
            bid = index_to_band.get(int(el.get("band_id")))
            if bid:
                meta.offsets[bid] = float((el.text or "0").strip())
    return meta


def jp2_available() -> bool:
    """Whether GDAL (as rasterio ships it) can read JPEG 2000 through the JP2OpenJPEG driver."""
    import rasterio

    with rasterio.Env() as env:
        return "JP2OpenJPEG" in env.drivers()


def read_safe(
    path: str | Path, *, scl_classes: Iterable[int] | None = None, boa_offset: float | None = None
) -> Scene:
    """Read a Sentinel-2 L2A SAFE folder (``MTD_MSIL2A.xml`` + ``GRANULE/*/IMG_DATA/R10m|R20m|R60m/*.jp2``).

    Each band comes from its finest resolution folder. Raises :class:`InputError` naming the folder when the metadata
    file or the image folders are missing.
    """
    path = Path(path)
    mtd = path / "MTD_MSIL2A.xml"
    if not mtd.exists():
        raise InputError(path, "is not a Sentinel-2 L2A SAFE folder: MTD_MSIL2A.xml is missing")
    meta = read_mtd_msil2a(mtd)
    granules = sorted((path / "GRANULE").glob("*/IMG_DATA"))
    if not granules:
        raise InputError(path, "SAFE folder has no GRANULE/*/IMG_DATA folder")
    if len(granules) > 1:
        raise InputError(path, f"SAFE folder has {len(granules)} granules; pass one granule's product at a time")
    files: dict[str, tuple[int, Path]] = {}
    for res_dir in sorted(granules[0].glob("R*m")):
        try:
            res = int(res_dir.name[1:-1])
        except ValueError:
            continue
        for f in res_dir.iterdir():
            if f.suffix.lower() not in _RASTER_EXT:
                continue
            bid = band_id_of(f.name)
            if bid and (bid not in files or files[bid][0] > res):
                files[bid] = (res, f)
    if any(f.suffix.lower() == ".jp2" for _, f in files.values()) and not jp2_available():
        raise InputError(
            path, "holds JPEG 2000 bands but this GDAL has no JP2OpenJPEG driver; install rasterio's wheels (they "
            "include it) or convert the bands to GeoTIFF (gdal_translate) and pass the folder of band files",
        )
    bands = {}
    q = meta.quantification
    for bid, (_, f) in files.items():
        if bid == "SCL":
            continue
        off = meta.offsets.get(bid, 0.0) if boa_offset is None else float(boa_offset)
        bands[bid] = BandSource(f, 1.0 / q, off / q, 0)
    if not bands:
        raise InputError(path, "SAFE folder has no band images under GRANULE/*/IMG_DATA/R10m|R20m|R60m")
    mask = scl_mask(files["SCL"][1], scl_classes) if "SCL" in files else None
    return Scene(
        id=meta.product_uri or path.name,
        source=path,
        bands=bands,
        mask=mask,
        processing_baseline=meta.baseline,
        aliases=dict(HLS_S30_NAMES),
    )


def read_band_folder(
    path: str | Path,
    *,
    scl_classes: Iterable[int] | None = None,
    boa_offset: float | None = None,
    quantification: float = 10000.0,
) -> Scene:
    """Read a folder of Sentinel-2 L2A band files (``B02.tif``, ``*_B02_10m.jp2`` …, optional ``SCL``).

    Offsets come from an ``MTD_MSIL2A.xml`` in the folder when present, else ``boa_offset`` (DN, default 0).
    """
    path = Path(path)
    meta = read_mtd_msil2a(path / "MTD_MSIL2A.xml") if (path / "MTD_MSIL2A.xml").exists() else None
    files: dict[str, Path] = {}
    for f in sorted(path.iterdir()):
        if f.suffix.lower() not in _RASTER_EXT:
            continue
        bid = band_id_of(f.name)
        if bid and (bid not in files or f.suffix.lower() != ".jp2"):
            files[bid] = f
    q = meta.quantification if meta else float(quantification)
    bands = {}
    for bid, f in files.items():
        if bid == "SCL":
            continue
        if boa_offset is not None:
            off = float(boa_offset)
        else:
            off = meta.offsets.get(bid, 0.0) if meta else 0.0
        bands[bid] = BandSource(f, 1.0 / q, off / q, 0)
    if not bands:
        raise InputError(path, "folder holds no Sentinel-2 band files (B01.tif … B12.tif, B8A, SCL)")
    mask = scl_mask(files["SCL"], scl_classes) if "SCL" in files else None
    return Scene(
        id=path.name,
        source=path,
        bands=bands,
        mask=mask,
        processing_baseline=meta.baseline if meta else None,
        aliases=dict(HLS_S30_NAMES),
    )


# ---------------------------------------------------------------------------------------------------------------- HLS

_HLS_RE = re.compile(r"^HLS\.(S30|L30)\.(T\w+)\.(\d{7}T\d{6})\.v(\d+\.\d+)\.(\w+)\.tif$", re.IGNORECASE)


def read_hls(path: str | Path, *, fmask_bits: Iterable[int] | None = None) -> Scene:
    """Read an HLS v2.0 granule folder (``HLS.S30|L30.T<tile>.<date>.v2.0.<band>.tif`` + ``.Fmask.tif``).

    Band files are int16 reflectance × 10,000 with fill -9999 (scale 0.0001 unless the file says otherwise). Band ids
    are the granule's own (``B8A`` for S30, ``B05`` for L30's narrow NIR); HLS names (``BLUE`` … ``SWIR_2``) resolve
    through the product's band table. Several granules in one folder are an error: give one folder per granule.
    """
    import rasterio

    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "HLS input must be a folder of HLS.S30/L30 band files")
    granules: dict[tuple[str, str, str], dict[str, Path]] = {}
    for f in sorted(path.iterdir()):
        m = _HLS_RE.match(f.name)
        if m:
            granules.setdefault((m.group(1).upper(), m.group(2), m.group(3)), {})[m.group(5)] = f
    if not granules:
        raise InputError(path, "no HLS v2.0 band files (HLS.S30|L30.T<tile>.<date>.v2.0.<band>.tif) in the folder")
    if len(granules) > 1:
        raise InputError(path, f"holds {len(granules)} HLS granules; give one folder per granule")
    (product, tile, date), files = next(iter(granules.items()))
    bands = {}
    for name, f in files.items():
        if not re.fullmatch(r"B\d\d|B8A", name, re.IGNORECASE):
            continue
        with rasterio.open(f) as ds:
            scale = ds.scales[0] if ds.scales and ds.scales[0] not in (None, 1.0) else 1e-4
            offset = ds.offsets[0] if ds.offsets and ds.offsets[0] else 0.0
            nodata = ds.nodata if ds.nodata is not None else -9999
        bands[name.upper()] = BandSource(f, float(scale), float(offset), nodata)
    fmask = next((f for n, f in files.items() if n.lower() == "fmask"), None)
    if not bands:
        raise InputError(path, "HLS folder has no band files (B01 … B12, B8A)")
    aliases = dict(HLS_S30_NAMES if product == "S30" else HLS_L30_NAMES)
    return Scene(
        id=f"HLS.{product}.{tile}.{date}",
        source=path,
        bands=bands,
        mask=fmask_mask(fmask, fmask_bits) if fmask is not None else None,
        kind=f"hls-{product.lower()}",
        aliases=aliases,
        default_bands=list(HLS_BANDS),
    )


# --------------------------------------------------------------------------------------------------------- dispatcher


def open_scene(
    path: str | Path,
    *,
    assets_dir: str | Path | None = None,
    scl_classes: Iterable[int] | None = None,
    boa_offset: float | None = None,
) -> Scene:
    """Open a Sentinel-2 L2A input of any layout: a STAC item ``.json``, a SAFE folder, or a folder of band files."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "Sentinel-2 input does not exist")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return read_stac_item(path, assets_dir=assets_dir, scl_classes=scl_classes, boa_offset=boa_offset)
        if path.name == "MTD_MSIL2A.xml":
            return read_safe(path.parent, scl_classes=scl_classes, boa_offset=boa_offset)
        raise InputError(path, "Sentinel-2 input must be a STAC item (.json), a SAFE folder or a folder of bands")
    if (path / "MTD_MSIL2A.xml").exists() and (path / "GRANULE").is_dir():
        return read_safe(path, scl_classes=scl_classes, boa_offset=boa_offset)
    return read_band_folder(path, scl_classes=scl_classes, boa_offset=boa_offset)


def parse_band_list(text: str | Sequence[str] | None) -> list[str] | None:
    """``"B02,B03, B04"`` -> ``["B02", "B03", "B04"]`` (upper-cased); None stays None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [s.strip().upper() for s in items if s.strip()]
    return out or None


def check_scenes(scenes: Sequence[Scene], bands: Sequence[str]) -> None:
    """Fail clearly when any scene lacks a requested band (names the scene and the band)."""
    for s in scenes:
        for b in bands:
            s.resolve(b)


def scale_map(scene: Scene) -> Mapping[str, tuple[float, float]]:
    """``{band id: (scale, offset)}`` of a scene (for reports and tests)."""
    return {b: (s.scale, s.offset) for b, s in scene.bands.items()}


# ------------------------------------------------------------------------------------------------ look-alike writers


def _native_grid(size10: int, res: int) -> int:
    return max(1, size10 * 10 // res)


def _write_band(path: Path, arr, crs, transform, nodata, cog: bool = True, driver: str = "GTiff") -> Path:
    """Write one band file (GeoTIFF / COG, or JP2 through JP2OpenJPEG, lossless)."""
    import numpy as np
    import rasterio

    from terracarbon.raster.io import write_geotiff

    path.parent.mkdir(parents=True, exist_ok=True)
    if driver == "JP2OpenJPEG":
        tmp = path.with_suffix(".tmp.tif")
        write_geotiff(tmp, arr, crs=crs, transform=transform, nodata=nodata, cog=False)
        rasterio.shutil.copy(str(tmp), str(path), driver="JP2OpenJPEG", REVERSIBLE="YES", QUALITY="100")
        tmp.unlink()
        for aux in path.parent.glob(path.name + ".aux.xml"):
            aux.unlink()
        return path
    write_geotiff(path, np.asarray(arr), crs=crs, transform=transform, nodata=nodata, cog=cog)
    return path


def synthetic_dn(band: str, shape: tuple[int, int], seed: int = 0, offset: int = 0):
    """Seeded uint16 DN for a look-alike band: smooth 1000-5000 values plus ``offset`` (0 never occurs)."""
    import numpy as np

    rng = np.random.default_rng([seed, S2_BANDS.index(band) if band in S2_BANDS else 99])
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = 3000 + 1500 * np.sin(xx / max(w, 1) * 6.0 + rng.uniform(0, 6)) * np.cos(yy / max(h, 1) * 5.0)
    noise = rng.integers(0, 200, size=shape)
    return np.clip(base + noise + offset, 1, 65535).astype(np.uint16)


def write_s2_lookalike(
    root: str | Path,
    *,
    layout: str = "earth-search",
    size: int = 120,
    crs: str = "EPSG:32629",
    origin: tuple[float, float] = (300000.0, 3300000.0),
    baseline: str = "04.00",
    bands: Sequence[str] = DEFAULT_S2_BANDS,
    dn: Mapping[str, object] | None = None,
    scl=None,
    seed: int = 0,
    offset_applied: bool | None = None,
    scene_id: str = "S2A_29RKH_20230115_0_L2A",
) -> Path:
    """Write a small Sentinel-2 L2A product in a real layout and return what a reader opens.

    ``layout``: ``"earth-search"`` (COGs + Earth Search v1 item JSON, hrefs pointing at the bucket),
    ``"planetary-computer"`` (COGs + Planetary Computer item JSON, asset keys ``B02``…, no ``raster:bands``),
    ``"safe"`` (a SAFE folder with ``MTD_MSIL2A.xml`` and JP2 bands under ``R10m|R20m|R60m``; B02 also at R20m with
    other values, as real products have), or ``"folder"`` (``B02.tif`` … + ``SCL.tif``). ``size`` is the 10 m width in
    pixels; bands are at their native 10/20/60 m sizes. ``dn`` gives a band's DN array (native size), else
    :func:`synthetic_dn`; ``scl`` the 20 m SCL array (default all vegetation, class 4).
    """

    import numpy as np
    from rasterio.transform import from_origin

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x0, y0 = origin
    arrays: dict[str, object] = {}
    for b in [*bands, "SCL"]:
        res = NATIVE_RESOLUTION[b]
        n = _native_grid(size, res)
        if b == "SCL":
            arrays[b] = np.full((n, n), 4, np.uint8) if scl is None else np.asarray(scl, np.uint8)
        else:
            arrays[b] = np.asarray(dn[b], np.uint16) if dn and b in dn else synthetic_dn(b, (n, n), seed)
    date = scene_id.split("_")[2] if scene_id.count("_") >= 3 else "20230115"
    tile = "T29RKH"
    if layout == "safe":
        offset = baseline_offset(baseline)
        safe = root / f"S2A_MSIL2A_{date}T112111_N{baseline.replace('.', '')}_R037_{tile}_{date}T123947.SAFE"
        img = safe / "GRANULE" / f"L2A_{tile}_A000001_{date}T112111" / "IMG_DATA"
        for b, arr in arrays.items():
            res = NATIVE_RESOLUTION[b]
            _write_band(
                img / f"R{res}m" / f"{tile}_{date}T112111_{b}_{res}m.jp2",
                arr,
                crs,
                from_origin(x0, y0, res, res),
                0,
                driver="JP2OpenJPEG",
            )
        if "B02" in arrays:  # the 20 m copy a real product carries: must not be picked over R10m
            a = np.asarray(arrays["B02"])[::2, ::2] // 2 + 1
            _write_band(
                img / "R20m" / f"{tile}_{date}T112111_B02_20m.jp2", a, crs, from_origin(x0, y0, 20, 20), 0,
                driver="JP2OpenJPEG",
            )
        offsets = "".join(
            f'        <BOA_ADD_OFFSET band_id="{i}">{int(offset)}</BOA_ADD_OFFSET>\n' for i in range(13)
        )
        spectral = "".join(
            f'        <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}"/>\n'
            for i, b in enumerate(S2_BANDS)
        )
        offset_block = (
            f"      <BOA_ADD_OFFSET_VALUES_LIST>\n{offsets}      </BOA_ADD_OFFSET_VALUES_LIST>\n" if offset else ""
        )
        (safe / "MTD_MSIL2A.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">\n'
            "  <n1:General_Info>\n    <Product_Info>\n"
            f"      <PRODUCT_URI>{safe.name}</PRODUCT_URI>\n"
            f"      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>\n"
            "    </Product_Info>\n    <Product_Image_Characteristics>\n"
            "      <QUANTIFICATION_VALUES_LIST>\n"
            '        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
            '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
            '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
            "      </QUANTIFICATION_VALUES_LIST>\n"
            f"{offset_block}"
            f"      <Spectral_Information_List>\n{spectral}      </Spectral_Information_List>\n"
            "    </Product_Image_Characteristics>\n  </n1:General_Info>\n</n1:Level-2A_User_Product>\n"
        )
        return safe
    folder = root / scene_id
    for b, arr in arrays.items():
        res = NATIVE_RESOLUTION[b]
        _write_band(folder / f"{b}.tif", arr, crs, from_origin(x0, y0, res, res), 0)
    if layout == "folder":
        return folder
    return write_stac_item_json(
        folder, layout=layout, bands=list(arrays), size=size, crs=crs, origin=origin, baseline=baseline,
        offset_applied=offset_applied, scene_id=scene_id,
    )


def write_stac_item_json(
    folder: str | Path,
    *,
    layout: str,
    bands: Sequence[str],
    size: int,
    crs: str,
    origin: tuple[float, float],
    baseline: str,
    offset_applied: bool | None = None,
    scene_id: str = "S2A_29RKH_20230115_0_L2A",
) -> Path:
    """Write the STAC item (``earth-search`` or ``planetary-computer`` layout) of band files ``<folder>/<band>.tif``.

    Hrefs point at the real buckets (as downloaded items do); readers find the files beside the JSON.
    """
    import datetime as _dt
    import json

    import pystac
    from rasterio.warp import transform_bounds

    folder = Path(folder)
    if layout not in ("earth-search", "planetary-computer"):
        raise ConfigError(f"unknown layout {layout!r}; choose earth-search, planetary-computer, safe or folder")
    x0, y0 = origin
    date = scene_id.split("_")[2] if scene_id.count("_") >= 3 else "20230115"
    arrays = list(bands)
    span = size * 10
    bbox = list(transform_bounds(crs, "EPSG:4326", x0, y0 - span, x0 + span, y0))
    geom = {
        "type": "Polygon",
        "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]],
    }
    props: dict[str, object] = {"s2:processing_baseline": baseline, "platform": "sentinel-2a", "proj:epsg": int(crs.split(":")[1])}
    es = layout == "earth-search"
    if es:
        props["earthsearch:boa_offset_applied"] = bool(offset_applied)
    item = pystac.Item(
        scene_id, geom, bbox, _dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:8]), 11, 21, tzinfo=_dt.timezone.utc), props
    )
    keys = {v: k for k, v in EARTH_SEARCH_KEYS.items()}
    for b in arrays:
        res = NATIVE_RESOLUTION[b]
        if es:
            href = f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/29/R/KH/{scene_id}/{b}.tif"
            key = keys[b]
        else:
            href = f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/29/R/KH/{scene_id}/{b}.tif"
            key = b
        extra: dict[str, object] = {"gsd": res}
        if b != "SCL":
            extra["eo:bands"] = [{"name": key if es else b, "common_name": keys[b].rstrip("0123456789")}]
            if es:
                extra["raster:bands"] = [
                    {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": baseline_offset(baseline) / 1e4}
                ]
        item.add_asset(key, pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["data"], extra_fields=extra))
    path = folder / f"{scene_id}.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1))
    return path


def write_hls_lookalike(
    root: str | Path,
    *,
    product: str = "S30",
    size: int = 60,
    crs: str = "EPSG:32629",
    origin: tuple[float, float] = (300000.0, 3300000.0),
    reflectance: Mapping[str, object] | None = None,
    fmask=None,
    seed: int = 0,
    granule: str | None = None,
) -> Path:
    """Write a small HLS v2.0 granule folder (30 m int16 reflectance × 10,000, fill -9999, ``Fmask.tif``).

    ``reflectance`` gives a band's int16 array (by HLS band id, e.g. ``B8A``), else smooth seeded values; ``fmask``
    the uint8 Fmask array (default 0, clear).
    """
    import numpy as np
    from rasterio.transform import from_origin

    names = HLS_S30_NAMES if product.upper() == "S30" else HLS_L30_NAMES
    gid = granule or f"HLS.{product.upper()}.T29RKH.2023015T112111.v2.0"
    folder = Path(root) / gid
    tr = from_origin(origin[0], origin[1], 30, 30)
    for hls_name in HLS_BANDS:
        b = names[hls_name]
        if reflectance and b in reflectance:
            arr = np.asarray(reflectance[b], np.int16)
        else:
            arr = (synthetic_dn("B02", (size, size), seed + len(b) + int(b[1:3].replace("A", "0") or 0)) // 2).astype(np.int16)
        _write_band(folder / f"{gid}.{b}.tif", arr, crs, tr, -9999)
    fm = np.zeros((size, size), np.uint8) if fmask is None else np.asarray(fmask, np.uint8)
    _write_band(folder / f"{gid}.Fmask.tif", fm, crs, tr, 255)
    return folder
