"""The predictor stack: optical scenes and other layers warped onto one target grid, bands named as AGBD names them.

:func:`build_stack` turns Sentinel-2 L2A inputs (STAC items, SAFE folders, band folders; see
:mod:`terracarbon.data.sentinel2`), HLS v2.0 granules and any other rasters (``HH``, ``HV``, ``CH``, ``DEM``, ``LC`` …)
into one float32 stack on a :class:`Grid` (``like`` a raster, or an AOI / bounds + CRS + resolution):

* **Warping.** Every band file is warped onto the grid by a GDAL warped VRT (rasterio ``WarpedVRT``): nothing is read
  until a window of the output is, and each window warps only the source pixels it needs. Optical bands use
  ``resampling`` (bilinear by default, so 20 m / 60 m bands are interpolated onto a 10 m grid); the cloud mask always
  nearest. Layers use nearest when they hold classes (``LC`` or any integer or paletted raster), else bilinear
  (``layer_resampling`` overrides per layer).
* **Reflectance and clouds in the VRT.** Each optical band of the stack is a VRT derived band: the warped DN times
  the scene's ``scale`` plus ``offset`` (a ``ComplexSource`` ``ScaleRatio``/``ScaleOffset``, which GDAL applies on read)
  multiplied by the warped mask through a lookup table that maps masked SCL classes / Fmask values to NaN and the rest
  to 1 (pixel function ``mul``). A reader of the VRT therefore gets reflectance with clouds as NaN, no copy needed.
* **Output.** ``*.vrt``: the stack VRT plus a ``<stem>.parts/`` folder of per-band warped VRTs beside it (one scene
  only); the tiled engine streams it like any GeoTIFF. ``*.tif``: a cloud-optimised GeoTIFF written window by window
  (``block_size`` px squares), so memory stays bounded for a full 10,980² tile; with several scenes each pixel is the
  median of its clear observations (``np.nanmedian`` over the scenes).
* **Names and units.** Band descriptions are the requested band names (``B02`` … or HLS ``BLUE`` …) then the layer
  names; nodata is NaN; the dataset tag ``TERRACARBON_UNITS`` is ``reflectance`` (0-1) or ``reflectance_x10000``
  (what HLS-trained models such as granite-geospatial-biomass expect).

The design follows odc-stac / stackstac (items onto one target grid, resampling per band, lazy reads) without their
xarray/dask machinery: the result is a file the rest of terracarbon reads by band name.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from terracarbon.data.sentinel2 import (
    BandSource,
    MaskSource,
    Scene,
    check_scenes,
    open_scene,
    read_hls,
)
from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import COG_OPTIONS, open_raster
from terracarbon.utils import atomic_path, progress

UNITS: dict[str, float] = {"reflectance": 1.0, "reflectance_x10000": 10000.0}
"""Accepted ``units`` of the optical bands and the factor applied to reflectance."""

UNITS_TAG = "TERRACARBON_UNITS"
"""Dataset-level tag naming the optical bands' units (a contract with model importers and predict's warning)."""

CLASS_LAYERS = frozenset({"LC", "LANDCOVER", "LAND_COVER", "WORLDCOVER", "CLASSES"})
"""Layer names always resampled with nearest (class codes)."""

__all__ = ["Grid", "build_stack", "parse_layers", "UNITS", "UNITS_TAG"]


# ---------------------------------------------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """A target pixel grid: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_raster(cls, path: str | Path) -> Grid:
        """The grid of an existing raster (``--like GRID.tif``)."""
        with open_raster(path) as ds:
            return cls(ds.crs, ds.transform, ds.width, ds.height)

    @classmethod
    def from_bounds(
        cls, bounds: Sequence[float], crs: Any, resolution: float, snap: bool = True
    ) -> Grid:
        """The grid covering ``bounds`` (left, bottom, right, top in ``crs``) at ``resolution``.

        With ``snap`` the edges move outwards to multiples of the resolution, so grids built from different AOIs at
        the same resolution share pixel edges (as Sentinel-2's own 10 m grid does).
        """
        if resolution is None or float(resolution) <= 0:
            raise ConfigError("resolution must be a positive number of CRS units (e.g. metres)")
        crs = _crs(crs)
        left, bottom, right, top = (float(v) for v in bounds)
        if not (right > left and top > bottom):
            raise ConfigError(f"bounds {tuple(bounds)} are empty (need left < right and bottom < top)")
        r = float(resolution)
        if snap:
            left, bottom = math.floor(left / r) * r, math.floor(bottom / r) * r
            right, top = math.ceil(right / r) * r, math.ceil(top / r) * r
        width, height = max(1, round((right - left) / r)), max(1, round((top - bottom) / r))
        return cls(crs, Affine(r, 0.0, left, 0.0, -r, top), int(width), int(height))

    @classmethod
    def from_aoi(cls, path: str | Path, crs: Any, resolution: float) -> Grid:
        """The snapped grid covering a vector AOI (any format geopandas reads) reprojected to ``crs``."""
        import geopandas as gpd

        path = Path(path)
        if not path.exists():
            raise InputError(path, "AOI file does not exist")
        try:
            gdf = gpd.read_file(path)
        except Exception as exc:
            raise InputError(path, f"not a readable vector file ({exc})") from exc
        if gdf.empty:
            raise InputError(path, "AOI holds no features")
        if gdf.crs is None:
            raise InputError(path, "AOI has no CRS")
        return cls.from_bounds(gdf.to_crs(_crs(crs)).total_bounds, crs, resolution)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        return tuple(float(v) for v in rasterio.transform.array_bounds(self.height, self.width, self.transform))


def _crs(crs: Any) -> CRS:
    try:
        return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
    except Exception as exc:
        raise ConfigError(f"unknown CRS {crs!r} ({exc})") from exc


def _resampling(name: str | Resampling) -> Resampling:
    if isinstance(name, Resampling):
        return name
    try:
        return Resampling[str(name).lower()]
    except KeyError as exc:
        choices = ", ".join(r.name for r in Resampling if r.value < 14)
        raise ConfigError(f"unknown resampling {name!r}; choose one of {choices}") from exc


def parse_layers(specs: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Path]:
    """``["HH=palsar_hh.tif", "HH,HV=palsar.tif"]`` -> ``{"HH": path, ...}`` (a comma list names several bands of one
    file: ``{"HH,HV": path}``). A mapping is returned as is (paths made :class:`Path`)."""
    if specs is None:
        return {}
    if isinstance(specs, Mapping):
        return {str(k): Path(v) for k, v in specs.items()}
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, file = str(spec).partition("=")
        if not sep or not name.strip() or not file.strip():
            raise ConfigError(f"--layer {spec!r}: expected NAME=FILE (e.g. CH=canopy_height.tif)")
        out[name.strip()] = Path(file.strip())
    return out


# ------------------------------------------------------------------------------------------------------- VRT writing


def _absolutise(vrt_path: Path, base: Path) -> None:
    """Rewrite relative ``SourceDataset``/``SourceFilename`` of a serialised VRT as absolute paths."""
    tree = ET.parse(vrt_path)
    changed = False
    for el in tree.iter():
        if el.tag in ("SourceDataset", "SourceFilename") and el.get("relativeToVRT") == "1":
            el.text = str((base / (el.text or "")).resolve())
            el.set("relativeToVRT", "0")
            changed = True
    if changed:
        tree.write(vrt_path)


def _warp_to_vrt(
    src: Path, grid: Grid, resampling: Resampling, dst: Path, *, dtype: str | None, nodata: float | None
) -> Path:
    """Write a warped VRT of ``src`` (all bands) onto ``grid``; source paths absolute, nothing read but metadata."""
    from rasterio.vrt import WarpedVRT

    src = Path(src).resolve()  # the serialised VRT must not depend on the working directory
    with open_raster(src) as ds:
        src_nodata = ds.nodata
        kw: dict[str, Any] = {}
        if dtype is not None:
            kw["dtype"] = dtype
        with WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=resampling,
            src_nodata=src_nodata,
            nodata=nodata if nodata is not None else src_nodata,
            NUM_THREADS="ALL_CPUS",
            **kw,
        ) as vrt:
            rasterio.shutil.copy(vrt, str(dst), driver="VRT")
    _absolutise(dst, Path(dst).resolve().parent)  # GDAL writes paths relative to the VRT itself
    return dst


@dataclass
class _Band:
    """One band of a stack VRT: a description, a warped source and (optical bands) scaling and a mask."""

    name: str
    source: Path  # warped VRT on the grid
    source_band: int = 1
    scale: float = 1.0
    offset: float = 0.0
    mask: Path | None = None  # warped mask VRT
    mask_lut: str | None = None


def _lut(mask: MaskSource) -> str:
    return ",".join(f"{v}:{'nan' if mask.invalid(v) else 1}" for v in range(mask.max_value + 1))


def _src_xml(parent: ET.Element, path: Path, band: int, base: Path, **children: str) -> None:
    src = ET.SubElement(parent, "ComplexSource")
    rel = os.path.relpath(path, base)
    fn = ET.SubElement(src, "SourceFilename", relativeToVRT="1")
    fn.text = rel
    ET.SubElement(src, "SourceBand").text = str(band)
    for k, v in children.items():
        ET.SubElement(src, k).text = v


def _write_stack_vrt(path: Path, grid: Grid, bands: Sequence[_Band], tags: Mapping[str, str], base: Path) -> None:
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS").text = grid.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in grid.transform.to_gdal())
    md = ET.SubElement(root, "Metadata")
    for k, v in tags.items():
        ET.SubElement(md, "MDI", key=k).text = str(v)
    for i, b in enumerate(bands, start=1):
        attrs = {"dataType": "Float32", "band": str(i)}
        if b.mask is not None:
            attrs["subClass"] = "VRTDerivedRasterBand"
        el = ET.SubElement(root, "VRTRasterBand", **attrs)
        ET.SubElement(el, "Description").text = b.name
        ET.SubElement(el, "NoDataValue").text = "nan"
        scaling = {}
        if b.scale != 1.0 or b.offset != 0.0:
            scaling = {"ScaleOffset": repr(float(b.offset)), "ScaleRatio": repr(float(b.scale))}
        if b.mask is not None:
            ET.SubElement(el, "PixelFunctionType").text = "mul"
            ET.SubElement(el, "SourceTransferType").text = "Float32"
        _src_xml(el, b.source, b.source_band, base, **scaling)
        if b.mask is not None:
            _src_xml(el, b.mask, 1, base, LUT=b.mask_lut or "")
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode"))


# ------------------------------------------------------------------------------------------------------------- build


def _layer_resampling(name: str, path: Path, override: Mapping[str, str] | None) -> Resampling:
    if override and name in override:
        return _resampling(override[name])
    with open_raster(path) as ds:
        integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
        paletted = ds.colorinterp and ds.colorinterp[0] == ColorInterp.palette
    if name.upper() in CLASS_LAYERS or integer or paletted:
        return Resampling.nearest
    return Resampling.bilinear


def _scene_bands(
    scene: Scene, names: Sequence[str], grid: Grid, parts: Path, tag: str, resampling: Resampling, factor: float
) -> list[_Band]:
    """Warp a scene's requested bands and its mask onto the grid (VRTs in ``parts``) -> stack band specs."""
    mask_vrt, lut = None, None
    if scene.mask is not None:
        mask_vrt = _warp_to_vrt(
            scene.mask.path, grid, Resampling.nearest, parts / f"{tag}_mask.vrt", dtype=None, nodata=None
        )
        lut = _lut(scene.mask)
    out = []
    warped: dict[Path, Path] = {}
    for name in names:
        src: BandSource = scene.resolve(name)
        if src.path not in warped:
            warped[src.path] = _warp_to_vrt(
                src.path,
                grid,
                resampling,
                parts / f"{tag}_{src.path.stem.replace('.', '_')}.vrt",
                dtype="float32",
                nodata=float("nan"),
            )
            _set_src_nodata(warped[src.path], src.nodata)
        out.append(
            _Band(
                name=name,
                source=warped[src.path],
                source_band=src.band,
                scale=src.scale * factor,
                offset=src.offset * factor,
                mask=mask_vrt,
                mask_lut=lut,
            )
        )
    return out


def _set_src_nodata(vrt_path: Path, nodata: float | None) -> None:
    """Make sure the warper treats the band's nodata DN (0 for L2A, -9999 for HLS) as missing, even when the file's
    own header lacks it."""
    if nodata is None:
        return
    tree = ET.parse(vrt_path)
    opts = next((el for el in tree.iter() if el.tag == "GDALWarpOptions"), None)
    if opts is None:
        return
    for bl in opts.iter("BandMapping"):
        if bl.find("SrcNoDataReal") is None:
            ET.SubElement(bl, "SrcNoDataReal").text = repr(float(nodata))
            ET.SubElement(bl, "SrcNoDataImag").text = "0"
    tree.write(vrt_path)


def _layer_bands(
    layers: Mapping[str, Path], grid: Grid, parts: Path, override: Mapping[str, str] | None
) -> list[_Band]:
    out = []
    for key, path in layers.items():
        names = [n.strip() for n in key.split(",") if n.strip()]
        with open_raster(path) as ds:
            count = ds.count
        if len(names) > count:
            raise InputError(path, f"has {count} band(s) but the layer names {len(names)}: {', '.join(names)}")
        rs = _layer_resampling(names[0], Path(path), override)
        vrt = _warp_to_vrt(
            Path(path), grid, rs, parts / f"layer_{'_'.join(names)}.vrt", dtype="float32", nodata=float("nan")
        )
        out += [_Band(name=n, source=vrt, source_band=i) for i, n in enumerate(names, start=1)]
    return out


def build_stack(
    s2: Sequence[str | Path | Scene] = (),
    *,
    out: str | Path,
    like: str | Path | None = None,
    aoi: str | Path | None = None,
    bounds: Sequence[float] | None = None,
    crs: Any = None,
    resolution: float | None = None,
    grid: Grid | None = None,
    bands: Sequence[str] | None = None,
    layers: Iterable[str] | Mapping[str, str | Path] | None = None,
    hls: Sequence[str | Path] = (),
    assets_dir: str | Path | None = None,
    scl_classes: Iterable[int] | None = None,
    fmask_bits: Iterable[int] | None = None,
    boa_offset: float | None = None,
    resampling: str = "bilinear",
    layer_resampling: Mapping[str, str] | None = None,
    units: str = "reflectance",
    block_size: int = 1024,
    progress_bar: bool = True,
    gdal_cache_mb: int = 256,
) -> Path:
    """Build a predictor stack on one grid and write it to ``out`` (``.tif``: COG; ``.vrt``: VRT + ``.parts`` folder).

    Args:
        s2: Sentinel-2 L2A inputs (STAC item JSON, SAFE folder, band folder) or already opened :class:`Scene` s.
        out: output path; ``.tif``/``.tiff`` writes a cloud-optimised GeoTIFF atomically, ``.vrt`` a VRT.
        like / aoi + crs + resolution / bounds + crs + resolution / grid: the target grid (exactly one way).
        bands: optical band names in output order (``B02`` …, or HLS names ``BLUE`` …); default: the scenes' usual
            set (the 12 L2A bands in AGBD's order, or HLS's six).
        layers: other rasters, ``["CH=canopy_height.tif", "HH,HV=palsar.tif"]`` or a mapping.
        hls: HLS v2.0 granule folders (stacked and median-combined with ``s2``).
        assets_dir: where STAC asset files are, when not beside the item.
        scl_classes: SCL classes to mask (default 0, 1, 3, 8, 9, 10); ``fmask_bits``: Fmask bits (default 1, 2, 3).
        boa_offset: override every scene's BOA offset (DN), e.g. ``-1000`` or ``0``.
        resampling: optical bands' resampling (``bilinear``, ``nearest``, ``cubic``, ``average`` …).
        layer_resampling: per-layer override, e.g. ``{"DEM": "bilinear"}``.
        units: ``reflectance`` (0-1) or ``reflectance_x10000``.
        block_size: window side (px) of the COG writer; memory is about ``scenes × bands × block_size² × 4`` bytes.

    Returns:
        ``out``.
    """
    out = Path(out)
    if units not in UNITS:
        raise ConfigError(f"unknown units {units!r}; choose one of {', '.join(UNITS)}")
    suffix = out.suffix.lower()
    if suffix not in (".tif", ".tiff", ".vrt"):
        raise ConfigError(f"--out {out}: write a .tif (cloud-optimised GeoTIFF) or a .vrt")
    grid = _grid(grid, like, aoi, bounds, crs, resolution)
    scenes = [
        s if isinstance(s, Scene) else open_scene(s, assets_dir=assets_dir, scl_classes=scl_classes, boa_offset=boa_offset)
        for s in s2
    ]
    scenes += [read_hls(h, fmask_bits=fmask_bits) for h in hls]
    layer_map = parse_layers(layers)
    if not scenes and not layer_map:
        raise ConfigError("nothing to stack: give --s2, --hls or --layer inputs")
    names = [b.upper() for b in bands] if bands else (list(scenes[0].default_bands) if scenes else [])
    if len(set(names)) != len(names):
        raise ConfigError(f"band list {names} names a band twice")
    check_scenes(scenes, names)
    all_names = names + [n.strip() for k in layer_map for n in k.split(",") if n.strip()]
    if len(set(all_names)) != len(all_names):
        raise ConfigError(f"band names {all_names} repeat a name (layers must not reuse band names)")
    if suffix == ".vrt" and len(scenes) > 1:
        raise ConfigError(
            f"--out {out}: a VRT holds one scene; {len(scenes)} scenes need a per-pixel median: write a .tif"
        )
    rs = _resampling(resampling)
    factor = UNITS[units]
    tags = {
        UNITS_TAG: units,
        "TERRACARBON_BANDS": ",".join(all_names),
        "TERRACARBON_SCENES": ",".join(s.id for s in scenes),
        "TERRACARBON_RESAMPLING": rs.name,
    }
    masks = sorted({f"{s.mask.kind}:{','.join(map(str, _mask_desc(s.mask)))}" for s in scenes if s.mask})
    if masks:
        tags["TERRACARBON_MASK"] = ";".join(masks)
    env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": int(gdal_cache_mb)}
    with rasterio.Env(**env):
        if suffix == ".vrt":
            return _build_vrt(out, grid, scenes, names, layer_map, layer_resampling, rs, factor, tags)
        return _build_cog(
            out, grid, scenes, names, layer_map, layer_resampling, rs, factor, tags, block_size, progress_bar
        )


def _mask_desc(mask: MaskSource) -> list[int]:
    if mask.kind == "fmask":
        bits = [b for b in range(8) if mask.invalid(1 << b) and b != 7]
        return bits
    return list(mask.invalid_values)


def _grid(grid, like, aoi, bounds, crs, resolution) -> Grid:
    given = [x is not None for x in (grid, like, aoi, bounds)]
    if sum(given) != 1:
        raise ConfigError("give exactly one target grid: --like GRID.tif, or --aoi FILE (or --bounds) with --crs and --resolution")
    if grid is not None:
        return grid
    if like is not None:
        return Grid.from_raster(like)
    if crs is None or resolution is None:
        raise ConfigError("--aoi / --bounds need --crs EPSG:N and --resolution M")
    if aoi is not None:
        return Grid.from_aoi(aoi, crs, resolution)
    return Grid.from_bounds(bounds, crs, resolution)


def _build_vrt(out, grid, scenes, names, layer_map, layer_resampling, rs, factor, tags) -> Path:
    parts_final = out.with_name(f"{out.stem}.parts")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.stem}.parts.", dir=out.parent))
    try:
        bands = []
        for i, s in enumerate(scenes):
            bands += _scene_bands(s, names, grid, tmp, f"s{i}", rs, factor)
        bands += _layer_bands(layer_map, grid, tmp, layer_resampling)
        # the stack VRT refers to its parts relative to itself: retarget them to the final folder name
        for b in bands:
            b.source = parts_final / b.source.name
            b.mask = None if b.mask is None else parts_final / b.mask.name
        if parts_final.exists():
            shutil.rmtree(parts_final)
        os.replace(tmp, parts_final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with atomic_path(out, suffix=".vrt") as t:
        _write_stack_vrt(t, grid, bands, tags, out.parent.resolve())
        # the temporary VRT sits beside ``out``: relative paths stay valid after the move
    return out


def _build_cog(
    out, grid, scenes, names, layer_map, layer_resampling, rs, factor, tags, block_size, progress_bar
) -> Path:
    if block_size < 256 or block_size % 256:
        raise ConfigError("block_size must be a positive multiple of 256")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.parts.", dir=out.parent))
    try:
        scene_vrts = []
        for i, s in enumerate(scenes):
            p = tmpdir / f"scene_{i}.vrt"
            _write_stack_vrt(p, grid, _scene_bands(s, names, grid, tmpdir, f"s{i}", rs, factor), {}, tmpdir)
            scene_vrts.append(p)
        layer_vrt = None
        lbands = _layer_bands(layer_map, grid, tmpdir, layer_resampling)
        if lbands:
            layer_vrt = tmpdir / "layers.vrt"
            _write_stack_vrt(layer_vrt, grid, lbands, {}, tmpdir)
        all_names = names + [b.name for b in lbands]
        with atomic_path(out, suffix=".tif") as tmp:
            plain = tmpdir / "plain.tif"
            _write_windows(plain, grid, scene_vrts, layer_vrt, all_names, tags, block_size, progress_bar, out)
            # the intermediate is uncompressed (written once, read once); the COG gets DEFLATE with the floating-point
            # predictor, which packs reflectance tighter and faster than plain DEFLATE
            rasterio.shutil.copy(
                str(plain), str(tmp), driver="COG", **COG_OPTIONS, PREDICTOR="YES", NUM_THREADS="ALL_CPUS",
                overview_resampling="average",
            )
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def _write_windows(plain, grid, scene_vrts, layer_vrt, all_names, tags, block_size, progress_bar, out) -> None:
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": len(all_names),
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "BIGTIFF": "IF_SAFER",
        # band-sequential tiles: a window written band by band touches each tile once (pixel-interleaved tiles would
        # be read, modified and rewritten once per band: 12x the I/O for 12 bands)
        "interleave": "band",
    }
    if grid.width >= 256 and grid.height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    windows = [
        Window(c, r, min(block_size, grid.width - c), min(block_size, grid.height - r))
        for r in range(0, grid.height, block_size)
        for c in range(0, grid.width, block_size)
    ]
    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(rasterio.open(p)) for p in scene_vrts]
        lsrc = stack.enter_context(rasterio.open(layer_vrt)) if layer_vrt is not None else None
        dst = stack.enter_context(rasterio.open(plain, "w", **profile))
        for i, name in enumerate(all_names, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)
        bar = stack.enter_context(progress(disable=not progress_bar))
        task = bar.add_task(f"stack {out.name}", total=len(windows))
        for w in windows:
            parts = []
            if srcs:
                obs = [s.read(window=w, out_dtype="float32") for s in srcs]
                if len(obs) == 1:
                    parts.append(obs[0])
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
                        parts.append(np.nanmedian(np.stack(obs), axis=0).astype(np.float32))
            if lsrc is not None:
                parts.append(lsrc.read(window=w, out_dtype="float32"))
            dst.write(np.concatenate(parts, axis=0), window=w)
            bar.advance(task)
