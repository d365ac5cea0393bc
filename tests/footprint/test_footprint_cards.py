"""Model cards: Hub YAML schema with co2_eq_emissions, read back by huggingface_hub.ModelCard."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from terracarbon.errors import ConfigError, InputError
from terracarbon.footprint import read_model_card, track_emissions, write_model_card
from terracarbon.footprint.cards import build_card_data


def test_card_carries_tracked_emissions_and_round_trips(tmp_path):
    with track_emissions(tmp_path, "train", country_iso_code="USA") as t:
        sum(range(100_000))
    r = t.result
    metrics = {"rmse": 31.25, "r2": 0.61, "per_bin": {"0-50": {"rmse": 12.0}}, "note": "text"}
    kwargs = dict(
        model_id="terracarbon/biomass-unet",
        emissions_g=r["emissions_g"],
        training_type="finetuning",
        location=r["country_iso_code"],
        hardware=r["hardware"],
        datasets=["agbd-synthetic"],
        metrics=metrics,
        pipeline_tag="image-segmentation",
        tags=("biomass",),
    )
    path = write_model_card(tmp_path, footprint=r, **kwargs)
    assert path == tmp_path / "README.md"

    card = ModelCard.load(path)
    co2 = card.data.co2_eq_emissions
    assert co2["emissions"] == r["emissions_g"]  # exact, not approximately
    assert co2["source"] == "codecarbon"
    assert co2["training_type"] == "fine-tuning"
    assert co2["geographical_location"] == "USA"
    assert co2["hardware_used"] == r["hardware"]
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["agbd-synthetic"]
    assert set(card.data.tags) == {"terracarbon", "biomass"}
    values = {e.metric_type: e.metric_value for e in card.data.eval_results}
    assert values == {"rmse": 31.25, "r2": 0.61, "per_bin.0-50.rmse": 12.0}

    # unchanged round trip: the parsed metadata equals what we generated
    expected = build_card_data(**{k: v for k, v in kwargs.items()}).to_dict()
    assert card.data.to_dict() == expected
    assert read_model_card(tmp_path) == expected
    # saving the parsed card again yields the identical file
    card.save(tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == path.read_text()
    assert r["method"] in path.read_text()


def test_card_without_emissions_and_bad_values(tmp_path):
    write_model_card(
        tmp_path,
        model_id="m",
        emissions_g=None,
        training_type=None,
        location=None,
        hardware=None,
        datasets=None,
        metrics=None,
    )
    meta = read_model_card(tmp_path / "README.md")
    assert "co2_eq_emissions" not in meta
    assert "not measured" in (tmp_path / "README.md").read_text()
    with pytest.raises(ConfigError, match="emissions_g"):
        write_model_card(
            tmp_path,
            model_id="m",
            emissions_g="lots",
            training_type=None,
            location=None,
            hardware=None,
            datasets=None,
            metrics=None,
        )


def test_read_model_card_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_model_card(tmp_path / "missing.md")
    bad = tmp_path / "README.md"
    bad.write_text("---\nmodel-index: [{results: 3}]\n---\n# x\n")
    with pytest.raises(InputError, match="README.md"):
        read_model_card(bad)
