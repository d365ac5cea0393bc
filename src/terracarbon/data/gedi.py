"""Read GEDI L4A footprint biomass granules (ORNL DAAC, V2 / V2.1) into EPSG:4326 shot points.

Layout (GEDI L4A data dictionary and the ORNL DAAC tutorials, github.com/ornldaac/gedi_tutorials, notebook
``3_gedi_l4a_exploring_data`` and ``scripts/gedi_l4a_hyrax.py``): one HDF5 file per quarter orbit with a root attribute
``short_name = "GEDI_L4A"``, ``METADATA/DatasetIdentification`` and eight ``BEAMxxxx`` groups. Each beam group carries
an attribute ``description`` = ``"Coverage beam"`` or ``"Full power beam"``; ``BEAM0000``, ``BEAM0001``, ``BEAM0010``,
``BEAM0011`` are the coverage beams, ``BEAM0101``, ``BEAM0110``, ``BEAM1000``, ``BEAM1011`` the full-power beams (the
ORNL DAAC tutorial subsets "power beams" with ``--beams BEAM0101,BEAM0110,BEAM1000,BEAM1011``). Per beam, one value
per shot:

==============================  ========  ===============================================================
dataset                         dtype     meaning
==============================  ========  ===============================================================
``shot_number``                 uint64    unique shot id
``lat_lowestmode``              float64   latitude of the lowest mode (degrees)
``lon_lowestmode``              float64   longitude of the lowest mode (degrees)
``agbd``, ``agbd_se``           float32   aboveground biomass density and its standard error (Mg/ha); -9999 fill
``agbd_pi_lower/upper``         float32   prediction interval (Mg/ha)
``l4_quality_flag``             uint8     1 = the documented "use this shot" flag
``degrade_flag``                uint8     non-zero = degraded pointing / positioning
``sensitivity``                 float32   beam sensitivity (0-1; negative / >1 values exist on bad shots)
``delta_time``                  float64   seconds since 2018-01-01T00:00:00 UTC
``land_cover_data/pft_class``   uint8     plant functional type class
==============================  ========  ===============================================================

Only these datasets are read, beam by beam (a full granule is about a gigabyte); the filter columns first, then the
rest of a beam only if some of its shots pass. A granule may be given as the ``.h5`` file or as a ``.zip`` holding it
(the member is copied to a temporary file, never into the output folder).

>>> from terracarbon.data.gedi import read_gedi_l4a, write_shots
>>> shots = read_gedi_l4a(["GEDI04_A_2020036151358_O06515_02_T00198_02_002_01_V002.h5"], power_beams=True)
>>> write_shots(shots, "shots.gpkg")

Filters (each recorded in the output's metadata, see :func:`read_shots_metadata`): default ``l4_quality_flag == 1``
and a valid ``agbd`` (finite, not the -9999 fill, >= 0) with finite coordinates; as options ``degrade_flag == 0``,
a minimum ``sensitivity``, full-power beams only, a time range, a lon/lat bounding box and an AOI polygon file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

__all__ = [
    "GEDI_EPOCH",
    "POWER_BEAMS",
    "COVERAGE_BEAMS",
    "AGBD_FILL",
    "SHOT_COLUMNS",
    "GediFilter",
    "read_gedi_l4a",
    "write_shots",
    "read_shots",
    "read_shots_metadata",
    "gedi_to_file",
    "write_l4a_granule",
]

GEDI_EPOCH = _dt.datetime(2018, 1, 1, tzinfo=_dt.UTC)
"""Origin of ``delta_time`` (GEDI data dictionary: "Time delta since Jan 1 00:00 2018")."""
POWER_BEAMS = ("BEAM0101", "BEAM0110", "BEAM1000", "BEAM1011")
COVERAGE_BEAMS = ("BEAM0000", "BEAM0001", "BEAM0010", "BEAM0011")
AGBD_FILL = -9999.0
METADATA_KEY = "terracarbon_gedi"

# datasets needed to decide which shots pass, then the rest of the output columns
_FILTER_DATASETS = ("l4_quality_flag", "agbd", "lat_lowestmode", "lon_lowestmode")
_OPTIONAL_FILTER = {"degrade": "degrade_flag", "sensitivity": "sensitivity", "time": "delta_time"}
_VALUE_DATASETS = {
    "shot_number": "shot_number",
    "agbd_se": "agbd_se",
    "agbd_pi_lower": "agbd_pi_lower",
    "agbd_pi_upper": "agbd_pi_upper",
    "degrade_flag": "degrade_flag",
    "sensitivity": "sensitivity",
    "delta_time": "delta_time",
    "pft_class": "land_cover_data/pft_class",
}
_REQUIRED = (*_FILTER_DATASETS, "shot_number", "agbd_se", "delta_time", "sensitivity", "degrade_flag")

SHOT_COLUMNS = [
    "shot_number",
    "granule",
    "beam",
    "beam_type",
    "time",
    "agbd",
    "agbd_se",
    "agbd_pi_lower",
    "agbd_pi_upper",
    "l4_quality_flag",
    "degrade_flag",
    "sensitivity",
    "pft_class",
]
"""Output columns (plus ``geometry``, EPSG:4326 points at ``lon_lowestmode``/``lat_lowestmode``)."""


@dataclass
class GediFilter:
    """Which shots :func:`read_gedi_l4a` keeps; :meth:`describe` is what goes into the output's metadata.

    Attributes:
        quality: keep only ``l4_quality_flag == 1`` (the documented default).
        drop_degraded: keep only ``degrade_flag == 0``.
        min_sensitivity: keep only ``sensitivity >= min_sensitivity`` (e.g. 0.9, 0.95 or 0.98 in the tropics).
        power_beams: full-power beams only (:data:`POWER_BEAMS`).
        start, end: UTC time range ``[start, end)`` of the shots (``datetime`` or ISO strings; dates are UTC midnight).
        bbox: ``(min_lon, min_lat, max_lon, max_lat)`` in degrees.
        aoi: an AOI vector file (any CRS, reprojected to EPSG:4326); shots inside its union are kept.
    """

    quality: bool = True
    drop_degraded: bool = False
    min_sensitivity: float | None = None
    power_beams: bool = False
    start: _dt.datetime | str | None = None
    end: _dt.datetime | str | None = None
    bbox: tuple[float, float, float, float] | None = None
    aoi: str | Path | None = None

    def __post_init__(self) -> None:
        self.start = _utc(self.start, "start")
        self.end = _utc(self.end, "end")
        if self.start and self.end and self.end <= self.start:
            raise ConfigError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ConfigError(f"bbox needs 4 numbers (min_lon, min_lat, max_lon, max_lat), got {self.bbox}")
            x0, y0, x1, y1 = (float(v) for v in self.bbox)
            if not (x0 < x1 and y0 < y1):
                raise ConfigError(f"bbox {self.bbox} is empty: need min_lon < max_lon and min_lat < max_lat")
            self.bbox = (x0, y0, x1, y1)
        if self.min_sensitivity is not None and not np.isfinite(self.min_sensitivity):
            raise ConfigError(f"min_sensitivity must be a number, got {self.min_sensitivity}")

    def describe(self) -> dict[str, Any]:
        """The filter as JSON-able metadata (what every kept shot satisfies)."""
        d = asdict(self)
        d["start"] = self.start.isoformat() if self.start else None
        d["end"] = self.end.isoformat() if self.end else None
        d["aoi"] = str(self.aoi) if self.aoi is not None else None
        d["bbox"] = list(self.bbox) if self.bbox else None
        rules = ["agbd finite, != -9999 and >= 0", "lat/lon finite"]
        if self.quality:
            rules.append("l4_quality_flag == 1")
        if self.drop_degraded:
            rules.append("degrade_flag == 0")
        if self.min_sensitivity is not None:
            rules.append(f"sensitivity >= {self.min_sensitivity}")
        if self.power_beams:
            rules.append(f"beam in {list(POWER_BEAMS)} (full power)")
        if self.start:
            rules.append(f"time >= {d['start']}")
        if self.end:
            rules.append(f"time < {d['end']}")
        if self.bbox:
            rules.append(f"lon/lat in bbox {d['bbox']}")
        if self.aoi is not None:
            rules.append(f"inside AOI {d['aoi']}")
        d["rules"] = rules
        return d


def _utc(value, what: str) -> _dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        t = value
    elif isinstance(value, _dt.date):
        t = _dt.datetime(value.year, value.month, value.day)
    else:
        try:
            t = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{what}: {value!r} is not an ISO date/time (e.g. 2020-02-01 or 2020-02-01T12:00Z)") from exc
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


def _aoi_geometry(path: str | Path):
    import geopandas as gpd

    p = Path(path)
    if not p.exists():
        raise InputError(p, "AOI file does not exist")
    try:
        aoi = gpd.read_file(p)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise InputError(p, f"is not a readable vector file ({exc})") from exc
    if aoi.empty:
        raise InputError(p, "AOI file has no features")
    if aoi.crs is None:
        raise InputError(p, "AOI file has no CRS")
    geom = aoi.to_crs(4326).union_all()
    if geom.is_empty:
        raise InputError(p, "AOI geometry is empty")
    return geom


@contextlib.contextmanager
def _open_granule(path: Path) -> Iterator[Any]:
    """Open an L4A granule (``.h5`` or a ``.zip`` holding one) with h5py; clear :class:`InputError` otherwise."""
    import h5py

    if not path.exists():
        raise InputError(path, "GEDI granule does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not a GEDI L4A granule (.h5 or .zip)")
    tmpdir = None
    h5_path = path
    try:
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    members = [m for m in zf.infolist() if m.filename.lower().endswith((".h5", ".hdf5"))]
                    if not members:
                        raise InputError(path, "zip archive holds no .h5 GEDI granule")
                    if len(members) > 1:
                        raise InputError(
                            path, f"zip archive holds {len(members)} .h5 files; give one granule per file"
                        )
                    tmpdir = tempfile.mkdtemp(prefix="terracarbon-gedi-")
                    h5_path = Path(tmpdir) / Path(members[0].filename).name
                    with zf.open(members[0]) as src, open(h5_path, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(path, f"is a truncated or corrupt zip archive ({exc})") from exc
        try:
            f = h5py.File(h5_path, "r")
        except OSError as exc:
            msg = str(exc)
            if "truncated" in msg.lower() or "eof" in msg.lower():
                raise InputError(path, f"is a truncated HDF5 file ({msg}); download the granule again") from exc
            raise InputError(path, f"is not an HDF5 file, so not a GEDI L4A granule ({msg})") from exc
        try:
            _check_l4a(f, path)
            yield f
        finally:
            f.close()
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _attr_str(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        return _attr_str(v.item())
    return str(v)


def _check_l4a(f, path: Path) -> None:
    short = f.attrs.get("short_name")
    if short is None and "METADATA/DatasetIdentification" in f:
        short = f["METADATA/DatasetIdentification"].attrs.get("shortName")
    beams = [k for k in f.keys() if k.startswith("BEAM")]
    if short is not None and _attr_str(short) != "GEDI_L4A":
        raise InputError(path, f"is a {_attr_str(short)} file, not a GEDI L4A granule (short_name GEDI_L4A)")
    if not beams:
        raise InputError(path, "is not a GEDI L4A granule: it has no BEAMxxxx groups")
    if short is None and not any("agbd" in f[b] for b in beams):
        raise InputError(path, "is not a GEDI L4A granule: no short_name attribute and no BEAMxxxx/agbd dataset")


def _beam_type(group, name: str) -> str:
    desc = _attr_str(group.attrs.get("description", "")).lower()
    if "full power" in desc:
        return "full power"
    if "coverage" in desc:
        return "coverage"
    return "full power" if name in POWER_BEAMS else "coverage"


def _read_beam(
    f, path: Path, beam: str, flt: GediFilter, aoi_geom, t0: float | None, t1: float | None
) -> tuple[dict[str, np.ndarray] | None, dict[str, int]]:
    """The shots of one beam that pass ``flt`` (None when none do) and the per-rule drop counts."""
    g = f[beam]
    counts = {"read": 0}
    if "shot_number" not in g:
        return None, counts
    n = g["shot_number"].shape[0]
    counts["read"] = n
    if n == 0:
        return None, counts
    missing = [d for d in _REQUIRED if d not in g]
    if missing:
        raise InputError(path, f"is not a complete GEDI L4A granule: {beam} lacks {missing}")

    def get(name: str) -> np.ndarray:
        try:
            arr = g[name][()]
        except (OSError, KeyError) as exc:
            raise InputError(path, f"is truncated or corrupt: reading {beam}/{name} failed ({exc})") from exc
        if arr.shape[0] != n:
            raise InputError(path, f"{beam}/{name} has {arr.shape[0]} values but {beam} has {n} shots")
        return arr

    keep = np.ones(n, bool)

    def apply(rule: str, ok: np.ndarray) -> None:
        nonlocal keep
        counts[rule] = int((keep & ~ok).sum())
        keep &= ok

    agbd = get("agbd").astype(np.float32)
    lat = get("lat_lowestmode").astype(np.float64)
    lon = get("lon_lowestmode").astype(np.float64)
    apply("invalid_agbd", np.isfinite(agbd) & (agbd != AGBD_FILL) & (agbd >= 0))
    apply(
        "invalid_coordinates",
        np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180),
    )
    qf = get("l4_quality_flag")
    if flt.quality:
        apply("l4_quality_flag", qf == 1)
    deg = sens = dt = None
    if flt.drop_degraded:
        deg = get("degrade_flag")
        apply("degrade_flag", deg == 0)
    if flt.min_sensitivity is not None:
        sens = get("sensitivity")
        apply("min_sensitivity", sens >= flt.min_sensitivity)
    if t0 is not None or t1 is not None:
        dt = get("delta_time")
        ok = np.ones(n, bool)
        if t0 is not None:
            ok &= dt >= t0
        if t1 is not None:
            ok &= dt < t1
        apply("time_range", ok)
    if flt.bbox is not None:
        x0, y0, x1, y1 = flt.bbox
        apply("bbox", (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1))
    if aoi_geom is not None and keep.any():
        import shapely

        inside = np.zeros(n, bool)
        inside[keep] = shapely.contains_xy(aoi_geom, lon[keep], lat[keep])
        apply("aoi", inside)
    if not keep.any():
        return None, counts
    cols: dict[str, np.ndarray] = {
        "agbd": agbd[keep],
        "lat": lat[keep],
        "lon": lon[keep],
        "l4_quality_flag": qf[keep].astype(np.uint8),
    }
    have = {"degrade_flag": deg, "sensitivity": sens, "delta_time": dt}
    for col, name in _VALUE_DATASETS.items():
        arr = have.get(col)
        if arr is None:
            if name not in g:  # agbd_pi_* / pft_class are absent from some clipped subsets
                cols[col] = np.full(int(keep.sum()), np.nan if col.startswith("agbd") else 255)
                continue
            arr = get(name)
        cols[col] = arr[keep]
    return cols, counts


def read_gedi_l4a(
    granules: Sequence[str | Path] | str | Path,
    *,
    filter: GediFilter | None = None,
    progress: bool = True,
    **filter_kwargs: Any,
):
    """Read the shots of one or many GEDI L4A granules that pass a filter, as an EPSG:4326 GeoDataFrame.

    Args:
        granules: ``.h5`` granules or ``.zip`` archives holding one.
        filter: a :class:`GediFilter`; or give its fields as keyword arguments (``quality``, ``drop_degraded``,
            ``min_sensitivity``, ``power_beams``, ``start``, ``end``, ``bbox``, ``aoi``).
        progress: show a rich progress bar (granules × beams).

    Returns:
        A GeoDataFrame with :data:`SHOT_COLUMNS` (``shot_number`` int64, ``time`` UTC datetimes, ``agbd``/``agbd_se``
        Mg/ha float32, ``beam`` name, ...) and point geometries; ``.attrs["gedi"]`` holds the filter, the granules
        and the per-rule counts of dropped shots. Empty beams and beams whose shots all fail are skipped.

    Raises:
        InputError: a granule is missing, not HDF5, truncated, or not an L4A granule (the message names it).
    """
    import geopandas as gpd
    import pandas as pd

    from terracarbon.utils import progress as make_progress

    if isinstance(granules, str | Path):
        granules = [granules]
    paths = [Path(p) for p in granules]
    if not paths:
        raise ConfigError("read_gedi_l4a needs at least one granule")
    if filter is None:
        filter = GediFilter(**filter_kwargs)
    elif filter_kwargs:
        raise ConfigError("give either filter= or filter keyword arguments, not both")
    aoi_geom = _aoi_geometry(filter.aoi) if filter.aoi is not None else None
    t0 = (filter.start - GEDI_EPOCH).total_seconds() if filter.start else None
    t1 = (filter.end - GEDI_EPOCH).total_seconds() if filter.end else None

    parts: list[pd.DataFrame] = []
    dropped: dict[str, int] = {}
    per_granule: list[dict[str, Any]] = []
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("reading GEDI L4A", total=len(paths) * 8)
        for path in paths:
            n_read = n_kept = 0
            with _open_granule(path) as f:
                beams = sorted(k for k in f.keys() if k.startswith("BEAM"))
                for beam in beams:
                    bar.update(task, description=f"{path.name[:40]} {beam}")
                    btype = _beam_type(f[beam], beam)
                    if filter.power_beams and btype != "full power":
                        nb = int(f[beam]["shot_number"].shape[0]) if "shot_number" in f[beam] else 0
                        n_read += nb
                        dropped["power_beams"] = dropped.get("power_beams", 0) + nb
                        bar.advance(task)
                        continue
                    cols, counts = _read_beam(f, path, beam, filter, aoi_geom, t0, t1)
                    n_read += counts.pop("read")
                    for k, v in counts.items():
                        dropped[k] = dropped.get(k, 0) + v
                    bar.advance(task)
                    if cols is None:
                        continue
                    m = len(cols["agbd"])
                    n_kept += m
                    parts.append(
                        pd.DataFrame(
                            {
                                "shot_number": cols["shot_number"].astype(np.int64),
                                "granule": path.stem,
                                "beam": beam,
                                "beam_type": btype,
                                "time": pd.Timestamp(GEDI_EPOCH)
                                + pd.to_timedelta(cols["delta_time"].astype(np.float64), unit="s"),
                                "agbd": cols["agbd"].astype(np.float32),
                                "agbd_se": cols["agbd_se"].astype(np.float32),
                                "agbd_pi_lower": cols["agbd_pi_lower"].astype(np.float32),
                                "agbd_pi_upper": cols["agbd_pi_upper"].astype(np.float32),
                                "l4_quality_flag": cols["l4_quality_flag"].astype(np.uint8),
                                "degrade_flag": cols["degrade_flag"].astype(np.uint8),
                                "sensitivity": cols["sensitivity"].astype(np.float32),
                                "pft_class": cols["pft_class"].astype(np.uint8),
                                "lon": cols["lon"],
                                "lat": cols["lat"],
                            }
                        )
                    )
                bar.advance(task, 8 - len(beams))
            per_granule.append({"granule": str(path), "shots_read": n_read, "shots_kept": n_kept})
    if parts:
        df = pd.concat(parts, ignore_index=True)
    else:
        df = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY_DTYPES.items()})
        df["time"] = pd.Series(dtype="datetime64[ns, UTC]")
    gdf = gpd.GeoDataFrame(
        df.drop(columns=["lon", "lat"]),
        geometry=gpd.points_from_xy(df["lon"], df["lat"]),
        crs="EPSG:4326",
    )
    gdf.attrs["gedi"] = {
        "format": "terracarbon-gedi-shots/1",
        "product": "GEDI L4A (ORNL DAAC)",
        "filter": filter.describe(),
        "granules": per_granule,
        "n_shots": len(gdf),
        "dropped": dropped,
        "units": {"agbd": "Mg/ha", "agbd_se": "Mg/ha", "time": "UTC"},
    }
    return gdf


_EMPTY_DTYPES = {
    "shot_number": "int64",
    "granule": "object",
    "beam": "object",
    "beam_type": "object",
    "time": "object",
    "agbd": "float32",
    "agbd_se": "float32",
    "agbd_pi_lower": "float32",
    "agbd_pi_upper": "float32",
    "l4_quality_flag": "uint8",
    "degrade_flag": "uint8",
    "sensitivity": "float32",
    "pft_class": "uint8",
    "lon": "float64",
    "lat": "float64",
}


def _format(path: Path) -> str:
    suf = path.suffix.lower()
    if suf == ".gpkg":
        return "gpkg"
    if suf in (".parquet", ".geoparquet", ".pq"):
        return "parquet"
    raise ConfigError(f"{path}: output must end in .gpkg (GeoPackage) or .parquet (GeoParquet), not {suf!r}")


def write_shots(shots, out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write shots to a GeoPackage (``.gpkg``, layer ``gedi_shots``) or GeoParquet (``.parquet``), atomically.

    ``metadata`` (default ``shots.attrs["gedi"]``) is stored as JSON under the key ``terracarbon_gedi``: GeoPackage
    layer metadata (GDAL metadata domain), or a Parquet schema metadata key.
    """
    from terracarbon.utils import atomic_path

    out = Path(out)
    fmt = _format(out)
    meta = json.dumps(metadata if metadata is not None else shots.attrs.get("gedi", {}), default=str)
    with atomic_path(out) as tmp:
        if fmt == "gpkg":
            shots.to_file(
                tmp, driver="GPKG", layer="gedi_shots", engine="pyogrio", layer_metadata={METADATA_KEY: meta}
            )
        else:
            import pyarrow.parquet as pq

            plain = tmp.with_name(tmp.name + ".plain.parquet")
            shots.to_parquet(plain, index=False)
            table = pq.read_table(plain)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY.encode(): meta})
            pq.write_table(table, tmp)
            plain.unlink()
    return out


def read_shots_metadata(path: str | Path) -> dict[str, Any]:
    """The ``terracarbon_gedi`` metadata of a shots file written by :func:`write_shots` (``{}`` when absent)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "shots file does not exist")
    try:
        if _format(path) == "gpkg":
            import pyogrio

            raw = (pyogrio.read_info(path).get("layer_metadata") or {}).get(METADATA_KEY)
        else:
            import pyarrow.parquet as pq

            raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
    except ConfigError:
        raise
    except Exception as exc:
        raise InputError(path, f"is not a readable shots file ({exc})") from exc
    return json.loads(raw) if raw else {}


def read_shots(path: str | Path):
    """Read a shots file (GeoPackage / GeoParquet / any vector point file) as a GeoDataFrame; metadata in ``.attrs``."""
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InputError(path, "shots file does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:
        raise InputError(path, f"is not a readable vector file of shots ({exc})") from exc
    with contextlib.suppress(InputError, ConfigError, ValueError):
        gdf.attrs["gedi"] = read_shots_metadata(path)
    return gdf


@dataclass
class GediResult:
    """What :func:`gedi_to_file` returns."""

    path: Path
    n_shots: int
    metadata: dict[str, Any]


def gedi_to_file(
    granules: Sequence[str | Path], out: str | Path, *, progress: bool = True, **filter_kwargs: Any
) -> GediResult:
    """:func:`read_gedi_l4a` then :func:`write_shots`: granules → one GeoPackage / GeoParquet of filtered shots."""
    _format(Path(out))  # fail on a bad suffix before reading gigabytes
    shots = read_gedi_l4a(granules, progress=progress, **filter_kwargs)
    meta = shots.attrs["gedi"]
    path = write_shots(shots, out, meta)
    return GediResult(path, len(shots), meta)

def write_l4a_granule(
    path: str | Path,
    beams: dict[str, dict[str, Any]],
    *,
    short_name: str = "GEDI_L4A",
) -> Path:
    """Write a small HDF5 file in the GEDI L4A layout (for tests, demos and real-format end-to-end runs).

    ``beams`` maps a beam name (``"BEAM0101"``) to per-shot arrays keyed by L4A dataset path: ``lat_lowestmode``,
    ``lon_lowestmode``, ``agbd`` are needed; ``shot_number``, ``agbd_se``, ``agbd_pi_lower/upper``,
    ``l4_quality_flag`` (default 1), ``degrade_flag`` (0), ``sensitivity`` (0.97), ``delta_time`` (s since
    2018-01-01 UTC; default 2020-02-05), ``land_cover_data/pft_class`` (4) get defaults. Written atomically.
    """
    import h5py

    from terracarbon.utils import atomic_path

    path = Path(path)
    defaults = {
        "l4_quality_flag": (1, np.uint8),
        "degrade_flag": (0, np.uint8),
        "sensitivity": (0.97, np.float32),
        "delta_time": ((_dt.datetime(2020, 2, 5, tzinfo=_dt.UTC) - GEDI_EPOCH).total_seconds(), np.float64),
        "land_cover_data/pft_class": (4, np.uint8),
    }
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["short_name"] = short_name
        md = f.create_group("METADATA/DatasetIdentification")
        md.attrs["shortName"] = short_name
        md.attrs["fileName"] = path.name
        f.create_group("ANCILLARY")
        for k, (name, cols) in enumerate(sorted(beams.items())):
            g = f.create_group(name)
            g.attrs["description"] = "Full power beam" if name in POWER_BEAMS else "Coverage beam"
            agbd = np.asarray(cols["agbd"], np.float32)
            n = agbd.shape[0]
            g["agbd"] = agbd
            g["lat_lowestmode"] = np.asarray(cols["lat_lowestmode"], np.float64)
            g["lon_lowestmode"] = np.asarray(cols["lon_lowestmode"], np.float64)
            sn = cols.get("shot_number", (k + 1) * 10**12 + np.arange(n))
            g["shot_number"] = np.asarray(sn, np.uint64)
            g["agbd_se"] = np.asarray(cols.get("agbd_se", 0.1 * agbd + 2.0), np.float32)
            g["agbd_pi_lower"] = np.asarray(cols.get("agbd_pi_lower", 0.5 * agbd), np.float32)
            g["agbd_pi_upper"] = np.asarray(cols.get("agbd_pi_upper", 1.5 * agbd), np.float32)
            for key, (default, dtype) in defaults.items():
                g[key] = np.asarray(cols.get(key, np.full(n, default)), dtype)
    return path
