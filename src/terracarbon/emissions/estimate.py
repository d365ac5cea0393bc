"""Enterprise emission estimate: description -> NAICS codes -> EPA factor × revenue -> tCO2e with an interval.

The point estimate uses the best code's factor. The interval reflects classification uncertainty: the top-k codes'
emissions weighted by their probabilities (renormalised over the k codes); its bounds are the weighted quantiles at
(1 - level)/2 and (1 + level)/2. It says nothing about the uncertainty of the EPA factors themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from terracarbon.emissions.factors import CPI_U_SOURCE, FactorTable, deflate_to
from terracarbon.errors import ConfigError, InputError

__all__ = ["EmissionEstimate", "estimate_csv", "estimate_emissions", "weighted_quantile"]


@dataclass
class EmissionEstimate:
    """An emission estimate with the provenance of every number."""

    description: str | None
    revenue: float
    currency: str
    revenue_year: int
    revenue_usd: float
    dollar_year: int
    code: str
    title: str
    confidence: float | None
    factor_kg_per_usd: float
    margins: bool
    tco2e: float
    tco2e_expected: float
    interval: tuple[float, float]
    interval_level: float
    candidates: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["interval"] = list(self.interval)
        return d


def weighted_quantile(values, weights, q: float) -> float:
    """Quantile ``q`` of a discrete distribution (values with weights), by the cumulative weight."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    if v.size == 0:
        return float("nan")
    if w.sum() <= 0:
        w = np.ones_like(v)
    order = np.argsort(v)
    v, w = v[order], w[order] / w.sum()
    cum = np.cumsum(w)
    i = int(np.searchsorted(cum, q - 1e-12))
    return float(v[min(i, len(v) - 1)])


def _revenue_to_usd(revenue: float, currency: str, year: int, fx_rate: float | None, dollar_year: int):
    if not (isinstance(revenue, (int, float)) and math.isfinite(revenue)) or revenue < 0:
        raise ConfigError(f"revenue must be a non-negative number, got {revenue!r}")
    currency = currency.upper()
    prov = {}
    amount = float(revenue)
    if currency != "USD":
        if fx_rate is None or fx_rate <= 0:
            raise ConfigError(
                f"revenue in {currency}: give fx_rate (US dollars per 1 {currency}, {year} average)"
            )
        amount *= fx_rate
        prov["fx"] = f"converted {currency} -> USD at {fx_rate} USD/{currency} (user-supplied, {year})"
    usd, ratio = deflate_to(amount, year, dollar_year)
    if year != dollar_year:
        prov["deflator"] = (
            f"{year} USD -> {dollar_year} USD × {ratio:.4f} (CPI-U {dollar_year}/{year}; {CPI_U_SOURCE})"
        )
    return usd, prov


def estimate_emissions(
    description: str | None = None,
    revenue: float = 0.0,
    *,
    currency: str = "USD",
    year: int = 2021,
    fx_rate: float | None = None,
    code: str | None = None,
    classifier=None,
    factors: FactorTable | None = None,
    top_k: int = 10,
    margins: bool = False,
    interval_level: float = 0.8,
    prediction=None,
) -> EmissionEstimate:
    """Estimate a company's supply-chain emissions (tCO2e) from its description (or a known NAICS code) and revenue.

    Args:
        description: what the company does (classified with ``classifier``); not needed when ``code`` is given.
        revenue: annual revenue in ``currency`` of ``year``.
        fx_rate: US dollars per unit of ``currency`` (required unless the currency is USD).
        code: skip classification and use this NAICS code.
        classifier: a :class:`~.classify.NaicsClassifier` (default: shipped model, built on first use).
        factors: EPA factor table (default: :func:`~.factors.load_factors`).
        margins: use factors *with* margins (purchaser price; for purchased goods). Default: without margins
            (producer price), which suits a company's own sales.
        interval_level: probability mass of the classification interval (0.8 = 10th-90th weighted percentile).
    """
    from terracarbon.emissions.factors import load_factors

    if not 0 < interval_level <= 1:
        raise ConfigError("interval_level must be in (0, 1]")
    factors = factors or load_factors()
    revenue_usd, prov = _revenue_to_usd(revenue, currency, int(year), fx_rate, factors.dollar_year)
    if code is None and prediction is None:
        if not description or not str(description).strip():
            raise ConfigError("give a description or a NAICS code")
        if classifier is None:
            from terracarbon.emissions.classify import NaicsClassifier
            from terracarbon.emissions.naics import load_naics

            classifier = NaicsClassifier(load_naics())
        prediction = classifier.predict([description], top_k=top_k)[0]
    if prediction is not None:
        cands = [(c.code, c.title, c.probability) for c in prediction.candidates[:top_k]]
        cls_prov = (
            f"NAICS by {getattr(classifier, 'model_name', 'classifier')}, group reasoning over "
            f"{'+'.join(getattr(classifier, 'members', []))}; top-{len(cands)} probabilities"
        )
    else:
        from terracarbon.emissions.naics import normalize_code

        code = normalize_code(code)
        cands = [(code, "", 1.0)]
        cls_prov = "NAICS code given by the user"
    if not cands:
        raise ConfigError("the classifier returned no candidate codes")
    rows = []
    skipped = []
    for c, title, p in cands:
        try:
            look = factors.lookup(c, margins=margins)
        except ConfigError:  # no factor anywhere up the tree (e.g. sector 92, public administration)
            skipped.append(c)
            continue
        rows.append(
            {
                "code": c,
                "title": title or look.title,
                "probability": float(p),
                "kg_per_usd": look.kg_per_usd,
                "factor_code": look.matched_code,
                "fallback": look.fallback,
                "factor_note": look.note,
                "tco2e": revenue_usd * look.kg_per_usd / 1000.0,
            }
        )
    if not rows:
        raise ConfigError(f"no EPA emission factor for NAICS {', '.join(skipped)} or any ancestor")
    w = np.array([r["probability"] for r in rows])
    w = w / w.sum() if w.sum() > 0 else np.ones(len(rows)) / len(rows)
    vals = [r["tco2e"] for r in rows]
    lo = weighted_quantile(vals, w, (1 - interval_level) / 2)
    hi = weighted_quantile(vals, w, 1 - (1 - interval_level) / 2)
    best = rows[0]
    expected = float(np.dot(w, vals))
    unit = f"kg CO2e per {factors.dollar_year} USD ({'purchaser price, with margins' if margins else 'producer price, without margins'})"
    provenance = {
        "revenue_usd": f"{revenue} {currency.upper()} ({year})"
        + ("; " + "; ".join(prov.values()) if prov else ""),
        "code": cls_prov
        + (f"; skipped {', '.join(skipped)} (no EPA factor, e.g. public administration)" if skipped else ""),
        "factor_kg_per_usd": f"{best['factor_note']}; {unit}; {factors.source}",
        "tco2e": "revenue_usd × factor_kg_per_usd / 1000 (best code)",
        "tco2e_expected": f"probability-weighted mean over the top-{len(rows)} codes",
        "interval": f"{interval_level:.0%} weighted quantile range of the top-{len(rows)} codes' emissions "
        "(classification uncertainty only)",
    }
    return EmissionEstimate(
        description=description,
        revenue=float(revenue),
        currency=currency.upper(),
        revenue_year=int(year),
        revenue_usd=revenue_usd,
        dollar_year=factors.dollar_year,
        code=best["code"],
        title=best["title"],
        confidence=best["probability"] if prediction is not None else None,
        factor_kg_per_usd=best["kg_per_usd"],
        margins=margins,
        tco2e=best["tco2e"],
        tco2e_expected=expected,
        interval=(lo, hi),
        interval_level=interval_level,
        candidates=rows,
        provenance=provenance,
    )


def estimate_csv(
    in_csv: str | Path,
    out_csv: str | Path,
    *,
    description_column: str,
    revenue_column: str,
    year_column: str | None = None,
    year: int = 2021,
    currency: str = "USD",
    fx_rate: float | None = None,
    classifier=None,
    factors: FactorTable | None = None,
    top_k: int = 10,
    margins: bool = False,
    batch_size: int = 256,
    progress: bool = True,
    footprint_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Batch estimate over a CSV of companies; writes the input columns plus code, factor, tCO2e and interval.

    With ``footprint_dir`` the run's own energy and CO2e are recorded there (codecarbon, offline).
    """
    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.factors import load_factors
    from terracarbon.emissions.naics import load_naics
    from terracarbon.utils import atomic_path

    in_csv = Path(in_csv)
    if not in_csv.exists():
        raise InputError(in_csv, "file not found")
    df = pd.read_csv(in_csv, dtype=str, keep_default_na=False)
    for col in (description_column, revenue_column, year_column):
        if col is not None and col not in df.columns:
            raise InputError(in_csv, f"no column {col!r} (columns: {list(df.columns)})")
    revenue = pd.to_numeric(df[revenue_column].str.replace(",", ""), errors="coerce")
    bad = revenue.isna() | (revenue < 0)
    if bad.any():
        raise InputError(
            in_csv, f"column {revenue_column!r} row(s) {list(df.index[bad][:5] + 2)} are not amounts"
        )
    factors = factors or load_factors()
    classifier = classifier or NaicsClassifier(load_naics())
    preds = classifier.predict(
        df[description_column].tolist(), top_k=top_k, batch_size=batch_size, progress=progress
    )
    recs = []
    for i, p in enumerate(preds):
        y = int(df[year_column].iloc[i]) if year_column else year
        e = estimate_emissions(
            df[description_column].iloc[i],
            float(revenue.iloc[i]),
            currency=currency,
            year=y,
            fx_rate=fx_rate,
            classifier=classifier,
            factors=factors,
            top_k=top_k,
            margins=margins,
            prediction=p,
        )
        recs.append(
            {
                "naics_code": e.code,
                "naics_title": e.title,
                "confidence": round(e.confidence or 0.0, 6),
                "factor_kg_per_usd": e.factor_kg_per_usd,
                "factor_note": e.candidates[0]["factor_note"],
                "revenue_usd": round(e.revenue_usd, 2),
                "tco2e": round(e.tco2e, 4),
                "tco2e_expected": round(e.tco2e_expected, 4),
                "tco2e_low": round(e.interval[0], 4),
                "tco2e_high": round(e.interval[1], 4),
            }
        )
    out = pd.concat([df, pd.DataFrame(recs)], axis=1)
    with atomic_path(out_csv) as tmp:
        out.to_csv(tmp, index=False)
    return out
