"""Fixtures for the emissions tests: a small NAICS tree and EPA factor file in the official formats."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

# (code, title as printed by the Census with its trilateral "T", description)
NAICS_ROWS = [
    (
        "11",
        "Agriculture, Forestry, Fishing and HuntingT",
        "The Sector as a Whole\n\nThe Agriculture, Forestry, Fishing and Hunting sector comprises establishments "
        "primarily engaged in growing crops, raising animals, harvesting timber, and harvesting fish.",
    ),
    (
        "111",
        "Crop ProductionT ",
        "Industries in the Crop Production subsector grow crops mainly for food and fiber.",
    ),
    (
        "1111",
        "Oilseed and Grain FarmingT",
        "This industry group comprises establishments growing oilseed and grain.",
    ),
    ("11111", "Soybean FarmingT", "See industry description for 111110."),
    (
        "111110",
        "Soybean Farming",
        "This industry comprises establishments primarily engaged in growing soybeans.",
    ),
    ("11115", "Corn FarmingT", "See industry description for 111150."),
    (
        "111150",
        "Corn Farming ",
        "This industry comprises establishments primarily engaged in growing corn (except sweet corn)."
        "\n\nCross-References. Establishments primarily engaged in growing sweet corn--are classified elsewhere.",
    ),
    ("112", "Animal Production and AquacultureT ", "Industries in this subsector raise or fatten animals."),
    ("1121", "Cattle Ranching and FarmingT", "This industry group comprises establishments raising cattle."),
    (
        "11211",
        "Beef Cattle Ranching and FarmingT",
        "This industry comprises beef cattle ranches and feedlots.",
    ),
    (
        "112111",
        "Beef Cattle Ranching and Farming",
        "This U.S. industry comprises establishments raising beef cattle.",
    ),
    ("11212", "Dairy Cattle and Milk ProductionT", "See industry description for 112120."),
    (
        "112120",
        "Dairy Cattle and Milk Production",
        "This industry comprises establishments primarily engaged in milking dairy cattle.",
    ),
    (
        "31-33",
        "ManufacturingT",
        "The Sector as a Whole\n\nThe Manufacturing sector comprises establishments engaged in the mechanical, "
        "physical, or chemical transformation of materials into new products.",
    ),
    (
        "327",
        "Nonmetallic Mineral Product ManufacturingT",
        "Industries transform mined minerals such as sand, clay.",
    ),
    ("3273", "Cement and Concrete Product ManufacturingT", "This industry group makes cement and concrete."),
    ("32731", "Cement ManufacturingT", "See industry description for 327310."),
    (
        "327310",
        "Cement Manufacturing",
        "This industry comprises establishments primarily engaged in manufacturing Portland, natural, masonry, "
        "pozzolanic, and other hydraulic cements.",
    ),
    ("32732", "Ready-Mix Concrete ManufacturingT", "See industry description for 327320."),
    (
        "327320",
        "Ready-Mix Concrete Manufacturing",
        "This industry comprises establishments primarily engaged in manufacturing concrete delivered to a purchaser "
        "in a plastic and unhardened state.",
    ),
    (
        "336",
        "Transportation Equipment ManufacturingT",
        "Industries produce equipment for transporting people.",
    ),
    ("3361", "Motor Vehicle ManufacturingT", "This industry group makes complete motor vehicles."),
    (
        "33611",
        "Automobile and Light Duty Motor Vehicle ManufacturingT",
        "Makes automobiles and light trucks.",
    ),
    (
        "336111",
        "Automobile Manufacturing ",
        "This U.S. industry comprises establishments primarily engaged in manufacturing complete automobiles.",
    ),
    (
        "336112",
        "Light Truck and Utility Vehicle Manufacturing",
        "This U.S. industry comprises establishments primarily engaged in manufacturing light trucks and SUVs.",
    ),
    (
        "54",
        "Professional, Scientific, and Technical ServicesT",
        "The Sector as a Whole\n\nThe sector comprises establishments that specialize in performing professional, "
        "scientific, and technical activities for others, such as legal advice, accounting, and computer services.",
    ),
    (
        "541",
        "Professional, Scientific, and Technical ServicesT",
        "Industries in this subsector perform services.",
    ),
    ("5411", "Legal ServicesT", "This industry group comprises offices of lawyers and other legal services."),
    ("54111", "Offices of LawyersT", "See industry description for 541110."),
    (
        "541110",
        "Offices of Lawyers",
        "This industry comprises offices of legal practitioners, known as lawyers or attorneys, practicing law.",
    ),
    ("5415", "Computer Systems Design and Related ServicesT", "This industry group provides IT expertise."),
    (
        "54151",
        "Computer Systems Design and Related ServicesT",
        "Provides expertise in information technologies.",
    ),
    (
        "541511",
        "Custom Computer Programming Services ",
        "This U.S. industry comprises establishments primarily engaged in writing, modifying, testing, and "
        "supporting software to meet the needs of a particular customer.",
    ),
    (
        "541512",
        "Computer Systems Design Services",
        "This U.S. industry comprises establishments primarily engaged in planning and designing computer systems "
        "that integrate computer hardware, software, and communication technologies.",
    ),
]

# EPA v1.2 layout; 336112 deliberately missing (fallback test)
FACTOR_ROWS = [
    ("111110", "Soybean Farming", 0.9, 0.05, "1111A0"),
    ("111150", "Corn Farming", 1.2, 0.06, "1111B0"),
    ("112111", "Beef Cattle Ranching and Farming", 3.227, 0.071, "1121A0"),
    ("112120", "Dairy Cattle and Milk Production", 1.8, 0.05, "112120"),
    ("327310", "Cement Manufacturing", 3.768, 0.09, "327310"),
    ("327320", "Ready-Mix Concrete Manufacturing", 0.8, 0.04, "327320"),
    ("336111", "Automobile Manufacturing", 0.3, 0.05, "336111"),
    ("541110", "Offices of Lawyers", 0.05, 0.0, "541100"),
    ("541511", "Custom Computer Programming Services", 0.07, 0.0, "541511"),
    ("541512", "Computer Systems Design Services", 0.08, 0.0, "541512"),
]

LABELLED = [
    ("Soybean farming, field and seed production", "111110"),
    ("Soybeans grown for oil", "111110"),
    ("Corn farming, field and seed production", "111150"),
    ("Growing maize for grain", "111150"),
    ("Beef cattle ranching", "112111"),
    ("Raising cattle for beef", "112111"),
    ("Dairy farms producing milk", "112120"),
    ("Milk production on a cow farm", "112120"),
    ("Portland cement manufacturing", "327310"),
    ("Hydraulic cement plant", "327310"),
    ("Ready-mix concrete delivered by truck", "327320"),
    ("Concrete batching plant", "327320"),
    ("Car assembly plant", "336111"),
    ("Passenger car manufacturing", "336111"),
    ("Pickup truck manufacturing", "336112"),
    ("Sport utility vehicles assembly", "336112"),
    ("Law firm", "541110"),
    ("Attorneys' offices", "541110"),
    ("Custom software development for clients", "541511"),
    ("Computer programming services", "541511"),
    ("Computer systems integration design", "541512"),
    ("IT systems design consulting", "541512"),
]


def write_descriptions_csv(path: Path, rows=NAICS_ROWS) -> Path:
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(["Code", "Title", "Description"])
        w.writerows(rows)
    return path


def write_factors_csv(path: Path, rows=FACTOR_ROWS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "2017 NAICS Code",
                "2017 NAICS Title",
                "GHG",
                "Unit",
                "Supply Chain Emission Factors without Margins",
                "Margins of Supply Chain Emission Factors",
                "Supply Chain Emission Factors with Margins",
                "Reference USEEIO Code",
            ]
        )
        for code, title, wo, m, ref in rows:
            w.writerow(
                [code, title, "All GHGs", "kg CO2e/2021 USD, purchaser price", wo, m, round(wo + m, 3), ref]
            )
    return path


def write_labelled_csv(path: Path, rows=LABELLED) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["NAICS17", "INDEX ITEM DESCRIPTION"])
        for text, code in rows:
            w.writerow([code, text])
    return path


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("naics-small")
    write_descriptions_csv(d / "2017_NAICS_Descriptions.csv")
    write_factors_csv(d / "SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv")
    write_labelled_csv(d / "index.csv")
    return d


@pytest.fixture(scope="session")
def small_tax(small_dir):
    from terracarbon.emissions.naics import load_naics

    return load_naics(small_dir / "2017_NAICS_Descriptions.csv")


@pytest.fixture(scope="session")
def small_factors(small_dir):
    from terracarbon.emissions.factors import load_factors

    return load_factors(small_dir)


@pytest.fixture(scope="session")
def st_model():
    """The shipped MiniLM, loaded once (offline)."""
    from terracarbon.emissions.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def emb_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("emb-cache")


@pytest.fixture(scope="session")
def small_clf(small_tax, st_model, emb_cache):
    """Zero-shot classifier (title + description members) over the small tree."""
    from terracarbon.emissions.classify import NaicsClassifier

    return NaicsClassifier(small_tax, st_model, cache_dir=emb_cache)


@pytest.fixture(scope="session")
def fx():
    """The synthetic rows and writers of this module (tests cannot import conftest by name)."""
    import types

    return types.SimpleNamespace(
        NAICS_ROWS=NAICS_ROWS,
        FACTOR_ROWS=FACTOR_ROWS,
        LABELLED=LABELLED,
        write_descriptions_csv=write_descriptions_csv,
        write_factors_csv=write_factors_csv,
        write_labelled_csv=write_labelled_csv,
    )
