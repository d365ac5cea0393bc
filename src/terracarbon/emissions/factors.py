"""US EPA supply-chain GHG emission factors by NAICS-6, with fallback up the NAICS hierarchy.

Source: US EPA, *Supply Chain Greenhouse Gas Emission Factors v1.2 by NAICS-6* (USEEIO v2.0.1-411),
``SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv``: 1,016 NAICS-2017 6-digit industries, all GHGs in
kg CO2e per 2021 US dollar (purchaser price), without margins, margins, and with margins.

"With margins" factors include the transport, wholesale and retail margins between producer and purchaser and suit
spend on purchased goods; "without margins" (producer price) suit a company's own sales. Revenue in another year's
dollars is brought to 2021 dollars with the CPI-U deflator :data:`CPI_U` (a simple, economy-wide approximation;
the EPA advises sector-specific price indices for precise work).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from terracarbon.emissions.naics import normalize_code, sector_of
from terracarbon.errors import ConfigError, InputError

__all__ = [
    "CPI_U",
    "CPI_U_SOURCE",
    "EPA_FACTORS_FILE",
    "EPA_FACTORS_URL",
    "FactorLookup",
    "FactorTable",
    "deflate_to",
    "load_factors",
]

EPA_FACTORS_FILE = "SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv"
EPA_FACTORS_URL = "https://pasteur.epa.gov/uploads/10.23719/1529805/" + EPA_FACTORS_FILE
EPA_FACTORS_CITATION = (
    "US EPA (2024) Supply Chain Greenhouse Gas Emission Factors v1.2 by NAICS-6, doi:10.23719/1529805"
)

#: US city average CPI-U, all items, annual averages (1982-84 = 100), BLS series CUUR0000SA0.
CPI_U: dict[int, float] = {
    2010: 218.056,
    2011: 224.939,
    2012: 229.594,
    2013: 232.957,
    2014: 236.736,
    2015: 237.017,
    2016: 240.007,
    2017: 245.120,
    2018: 251.107,
    2019: 255.657,
    2020: 258.811,
    2021: 270.970,
    2022: 292.655,
    2023: 304.702,
    2024: 313.689,
}
CPI_U_SOURCE = (
    "US Bureau of Labor Statistics, CPI-U all items, US city average, annual average (series CUUR0000SA0)"
)

_COLS = {
    "code": ("2017 naics code", "naics code", "naics"),
    "title": ("2017 naics title", "naics title", "title"),
    "without": ("supply chain emission factors without margins",),
    "margins": ("margins of supply chain emission factors",),
    "with": ("supply chain emission factors with margins",),
    "unit": ("unit",),
    "ghg": ("ghg",),
    "useeio": ("reference useeio code",),
}


def deflate_to(amount: float, from_year: int, to_year: int = 2021) -> tuple[float, float]:
    """Convert ``amount`` in ``from_year`` US dollars to ``to_year`` dollars with CPI-U; returns (amount, ratio)."""
    if from_year == to_year:
        return float(amount), 1.0
    for y in (from_year, to_year):
        if y not in CPI_U:
            raise ConfigError(f"no CPI-U figure for {y} (table covers {min(CPI_U)}-{max(CPI_U)})")
    ratio = CPI_U[to_year] / CPI_U[from_year]
    return float(amount) * ratio, ratio


@dataclass
class FactorLookup:
    """A factor found for a code, and how it was found."""

    requested_code: str
    matched_code: str
    matched_level: int
    title: str
    kg_per_usd: float
    kg_per_usd_without_margins: float
    kg_per_usd_with_margins: float
    margins: bool
    n_factors: int
    fallback: bool
    note: str
    unit: str
    dollar_year: int
    source: str
    useeio_codes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


class FactorTable:
    """Emission factors indexed by 6-digit NAICS code."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        source: str = "",
        unit: str = "kg CO2e/2021 USD",
        dollar_year: int = 2021,
    ):
        self.frame = frame
        self.source = source
        self.unit = unit
        self.dollar_year = dollar_year
        self._codes = set(frame.index)

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, code: object) -> bool:
        return normalize_code(code) in self._codes

    def _under(self, prefix: str) -> pd.DataFrame:
        if "-" in prefix:
            return self.frame[[sector_of(c) == prefix for c in self.frame.index]]
        return self.frame[self.frame.index.str.startswith(prefix)]

    def lookup(self, code: object, *, margins: bool = True) -> FactorLookup:
        """Factor for ``code``; a code without its own factor falls back up the hierarchy (5, 4, 3, 2 digits).

        A fallback factor is the mean of the 6-digit factors under the nearest ancestor that has any, and the
        result says so (``fallback=True`` and ``note``). Codes shorter than 6 digits are averaged the same way.
        """
        code = normalize_code(code)
        if not code:
            raise ConfigError("empty NAICS code")
        col = "with" if margins else "without"
        if code in self._codes:
            row = self.frame.loc[code]
            return FactorLookup(
                requested_code=code,
                matched_code=code,
                matched_level=6,
                title=str(row["title"]),
                kg_per_usd=float(row[col]),
                kg_per_usd_without_margins=float(row["without"]),
                kg_per_usd_with_margins=float(row["with"]),
                margins=margins,
                n_factors=1,
                fallback=False,
                note=f"EPA factor of NAICS {code}",
                unit=self.unit,
                dollar_year=self.dollar_year,
                source=self.source,
                useeio_codes=[str(row["useeio"])] if "useeio" in row else [],
            )
        level = 2 if "-" in code else len(code)
        prefixes = []
        for lv in range(min(level, 5), 1, -1):
            prefixes.append(sector_of(code) if lv == 2 else code[:lv])
        for prefix in prefixes:
            sub = self._under(prefix)
            if len(sub):
                plevel = 2 if "-" in prefix else len(prefix)
                what = "has no factor of its own" if level == 6 else f"is a {level}-digit code"
                note = (
                    f"NAICS {code} {what}: mean of {len(sub)} EPA 6-digit factor(s) under "
                    f"{plevel}-digit {prefix} (range {sub[col].min():.3g}-{sub[col].max():.3g})"
                )
                return FactorLookup(
                    requested_code=code,
                    matched_code=prefix,
                    matched_level=plevel,
                    title=str(sub["title"].iloc[0])
                    if len(sub) == 1
                    else f"{len(sub)} industries under {prefix}",
                    kg_per_usd=float(sub[col].mean()),
                    kg_per_usd_without_margins=float(sub["without"].mean()),
                    kg_per_usd_with_margins=float(sub["with"].mean()),
                    margins=margins,
                    n_factors=len(sub),
                    fallback=True,
                    note=note,
                    unit=self.unit,
                    dollar_year=self.dollar_year,
                    source=self.source,
                    useeio_codes=sorted({str(u) for u in sub.get("useeio", [])}),
                )
        raise ConfigError(f"no EPA emission factor for NAICS {code} or any ancestor")


def load_factors(path: str | Path | None = None, *, download: bool = False) -> FactorTable:
    """Read the EPA supply-chain factor CSV (v1.2 NAICS-6 layout) into a :class:`FactorTable`.

    With no path, looks in ``$TERRACARBON_EMISSIONS_DATA``, the user cache and a checkout's shared data folder; with
    ``download=True`` fetches the file once from the EPA (:data:`EPA_FACTORS_URL`) into the user cache.
    """
    from terracarbon.emissions.naics import cache_dir, default_data_dir

    if path is None:
        cands = [d / EPA_FACTORS_FILE for d in (default_data_dir(), cache_dir()) if d is not None]
        found = [p for p in cands if p.exists()]
        if found:
            path = found[0]
        elif download:
            path = _download_factors(cache_dir())
        else:
            raise InputError(
                EPA_FACTORS_FILE,
                "EPA factor file not found; pass its path, set TERRACARBON_EMISSIONS_DATA or download",
            )
    path = Path(path)
    if path.is_dir():
        path = path / EPA_FACTORS_FILE
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except Exception as exc:
        raise InputError(path, f"cannot read CSV: {exc}") from exc
    lower = {" ".join(c.lower().split()): c for c in df.columns}
    cols: dict[str, str] = {}
    for key, names in _COLS.items():
        for n in names:
            if n in lower:
                cols[key] = lower[n]
                break
    missing = [k for k in ("code", "with", "without") if k not in cols]
    if missing:
        raise InputError(
            path,
            "not an EPA supply-chain factor file: missing column(s) "
            + ", ".join(_COLS[k][0] for k in missing)
            + f" (found {list(df.columns)})",
        )
    out = pd.DataFrame({k: df[c] for k, c in cols.items()})
    out["code"] = out["code"].map(normalize_code)
    for k in ("with", "without", "margins"):
        if k in out:
            out[k] = pd.to_numeric(out[k], errors="coerce")
    if "title" not in out:
        out["title"] = ""
    bad = out[out["with"].isna() | out["without"].isna() | ~out["code"].str.fullmatch(r"\d{6}")]
    if len(bad) == len(out):
        raise InputError(path, "no rows with a 6-digit code and numeric factors")
    out = out.drop(bad.index).drop_duplicates("code").set_index("code")
    unit = str(out["unit"].iloc[0]) if "unit" in out else "kg CO2e/2021 USD"
    year = 2021
    for y in range(2010, 2031):
        if str(y) in unit or str(y) in path.name:
            year = y
            break
    return FactorTable(out, source=f"{path.name} ({EPA_FACTORS_CITATION})", unit=unit, dollar_year=year)


def _download_factors(dest: Path) -> Path:
    import requests

    from terracarbon.utils import atomic_path

    url = os.environ.get("TERRACARBON_EPA_FACTORS_URL", EPA_FACTORS_URL)
    out = dest / EPA_FACTORS_FILE
    try:
        resp = requests.get(url, timeout=60)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise InputError(
            url, f"download failed ({exc}); download the file yourself and pass its path"
        ) from exc
    with atomic_path(out) as tmp:
        tmp.write_bytes(resp.content)
    return out
