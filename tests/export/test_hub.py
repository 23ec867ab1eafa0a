"""Model cards through huggingface_hub.ModelCard and the upload's token (offline: nothing reaches the network)."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from kronos_cli.core.errors import KronosError
from kronos_cli.export.hub import CardFacts, hub_token, model_card, write_cards

EVALUATION = {
    "split": "test",
    "models": [
        {"label": "fine-tuned", "kind": "model", "overall": {"mae": 0.0123, "crps": 0.0081}, "ic": {"ic": 0.052}},
        {"label": "random walk", "kind": "baseline", "overall": {"mae": 0.0151, "crps": 0.0102}, "ic": {"ic": 0.0}},
    ],
}
DATA = {"instrument": "csi300", "source": "qlib", "freq": "day", "train": ["2011-01-01", "2022-12-31"]}


def test_the_card_says_base_model_license_tags_leaderboard_and_data(tmp_path):
    facts = CardFacts({"tokenizer": "NeoQuasar/Kronos-Tokenizer-base", "model": "NeoQuasar/Kronos-small"}, DATA)
    facts.evaluation, facts.summary = EVALUATION, {"method": "lora", "trainable_share": 0.02}
    card = model_card("model", facts, {"d_model": 832})
    assert card.data.base_model == "NeoQuasar/Kronos-small" and card.data.license == "mit"
    assert {"kronos", "time-series", "finance"} <= set(card.data.tags) and card.data.library_name == "kronos-cli"
    assert "| fine-tuned | model | 0.0123 | 0.0081 | 0.052 |" in card.text
    assert "- train: 2011-01-01 to 2022-12-31" in card.text and "csi300 (qlib), bars of day" in card.text
    assert '"trainable_share": 0.02' in card.text
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"d_model": 832}))
    write_cards({"model": tmp_path / "model"}, facts)
    assert ModelCard.load(tmp_path / "model" / "README.md").data.base_model == "NeoQuasar/Kronos-small"


def test_a_local_or_preset_start_is_no_base_model(tmp_path):
    facts = CardFacts({"model": str(tmp_path), "tokenizer": "preset:tokenizer-tiny"}, DATA)
    assert model_card("model", facts, {}).data.base_model is None
    assert model_card("tokenizer", facts, {}).data.base_model is None
    assert "## Evaluation" not in model_card("model", facts, {}).text  # not evaluated: no leaderboard


def test_the_token_is_hf_token_else_the_one_hf_auth_login_stored(tmp_path, monkeypatch):
    stored = tmp_path / "token"
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(stored))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(KronosError, match="hf auth login"):
        hub_token()
    stored.write_text("hf_stored_by_login\n")
    assert hub_token() == "hf_stored_by_login"
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    assert hub_token() == "hf_from_the_environment"
