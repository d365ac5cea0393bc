"""Unit conversions: biomass -> carbon -> CO2 equivalent.

* Carbon fraction of dry biomass: 0.47 by default (IPCC 2006 Guidelines, Vol. 4, Table 4.3, default for tropical
  and subtropical wood and for all forest when no better value is known); configurable per call.
* CO2 per unit carbon: the molar-mass ratio 44/12 (CO2 = 44.01 g/mol, C = 12.011 g/mol, conventionally 44/12).

Units: AGB density in Mg/ha (= t/ha dry matter); carbon in Mg C; CO2e in t CO2 (1 Mg = 1 t).
"""

from __future__ import annotations

import numpy as np

from terracarbon.errors import ConfigError

DEFAULT_CARBON_FRACTION = 0.47
CO2_PER_C = 44.0 / 12.0


def _check_fraction(carbon_fraction: float) -> float:
    cf = float(carbon_fraction)
    if not 0.0 < cf <= 1.0:
        raise ConfigError(f"carbon fraction must be in (0, 1], got {carbon_fraction!r}")
    return cf


def agb_to_carbon(agb, carbon_fraction: float = DEFAULT_CARBON_FRACTION):
    """Carbon (same unit as ``agb``, e.g. Mg C/ha) in dry biomass ``agb`` (scalar or array)."""
    cf = _check_fraction(carbon_fraction)
    return np.multiply(agb, cf) if isinstance(agb, np.ndarray) else agb * cf


def carbon_to_co2e(carbon):
    """CO2 equivalent of a carbon mass (× 44/12)."""
    return np.multiply(carbon, CO2_PER_C) if isinstance(carbon, np.ndarray) else carbon * CO2_PER_C


def agb_to_co2e(agb, carbon_fraction: float = DEFAULT_CARBON_FRACTION):
    """CO2 equivalent of dry biomass: ``agb × carbon_fraction × 44/12``."""
    return carbon_to_co2e(agb_to_carbon(agb, carbon_fraction))
