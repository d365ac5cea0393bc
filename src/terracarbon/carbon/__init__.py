"""Carbon accounting: biomass (above- and belowground) -> carbon -> CO2e, stocks and stock change over areas of
interest, with uncertainty."""

from terracarbon.carbon.bgb import R_TABLE, CarbonModel, root_shoot_ratio
from terracarbon.carbon.change import CarbonChange, carbon_change, read_date
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
    "R_TABLE",
    "CarbonChange",
    "CarbonModel",
    "DEFAULT_CARBON_FRACTION",
    "CarbonStock",
    "agb_to_carbon",
    "agb_to_co2e",
    "carbon_change",
    "carbon_stock",
    "carbon_to_co2e",
    "find_std_source",
    "read_date",
    "root_shoot_ratio",
]
