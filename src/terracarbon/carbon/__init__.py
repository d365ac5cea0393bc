"""Carbon accounting: aboveground biomass -> carbon -> CO2e, stocks over areas of interest, uncertainty."""

from terracarbon.carbon.convert import (
    CO2_PER_C,
    DEFAULT_CARBON_FRACTION,
    agb_to_carbon,
    agb_to_co2e,
    carbon_to_co2e,
)
from terracarbon.carbon.stock import CarbonStock, carbon_stock, find_std_source

__all__ = [
    "CO2_PER_C",
    "DEFAULT_CARBON_FRACTION",
    "CarbonStock",
    "agb_to_carbon",
    "agb_to_co2e",
    "carbon_stock",
    "carbon_to_co2e",
    "find_std_source",
]
