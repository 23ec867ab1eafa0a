"""Checkpoints in the released layout load unchanged; bad checkpoints get a clear error."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from kronos_cli.core.errors import KronosError
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.checkpoint import resolve_checkpoint
from kronos_cli.model.config import Conventions

TOK_CFG = {
    "d_in": 6,
    "d_model": 32,
    "n_heads": 2,
    "ff_dim": 48,
    "n_enc_layers": 3,
    "n_dec_layers": 2,
    "ffn_dropout_p": 0.0,
    "attn_dropout_p": 0.0,
    "resid_dropout_p": 0.0,
    "s1_bits": 4,
    "s2_bits": 4,
    "beta": 0.05,
    "gamma0": 1.0,
    "gamma": 1.1,
    "zeta": 0.05,
    "group_size": 4,
}
MODEL_CFG = {
    "s1_bits": 4,
    "s2_bits": 4,
    "n_layers": 2,
    "d_model": 32,
    "n_heads": 4,
    "ff_dim": 48,
    "ffn_dropout_p": 0.1,
    "attn_dropout_p": 0.0,
    "resid_dropout_p": 0.1,
    "token_dropout_p": 0.0,
    "learn_te": True,
}


def _block(prefix: str, d: int, ff: int, heads: int) -> dict[str, tuple]:
    keys = {
        f"{prefix}.norm1.weight": (d,),
        f"{prefix}.norm2.weight": (d,),
        f"{prefix}.self_attn.rotary.inv_freq": (d // heads // 2,),
        f"{prefix}.ffn.w1.weight": (ff, d),
        f"{prefix}.ffn.w3.weight": (ff, d),
        f"{prefix}.ffn.w2.weight": (d, ff),
    }
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        keys[f"{prefix}.self_attn.{p}.weight"] = (d, d)
        keys[f"{prefix}.self_attn.{p}.bias"] = (d,)
    return keys


def reference_tokenizer_keys(c: dict) -> dict[str, tuple]:
    """The reference tokenizer's state_dict keys and shapes, written out from its published structure."""
    d, k = c["d_model"], c["s1_bits"] + c["s2_bits"]
    keys = {
        "embed.weight": (d, c["d_in"]),
        "embed.bias": (d,),
        "head.weight": (c["d_in"], d),
        "head.bias": (c["d_in"],),
        "quant_embed.weight": (k, d),
        "quant_embed.bias": (k,),
        "post_quant_embed_pre.weight": (d, c["s1_bits"]),
        "post_quant_embed_pre.bias": (d,),
        "post_quant_embed.weight": (d, k),
        "post_quant_embed.bias": (d,),
        "tokenizer.bsq.basis": (k,),
        "tokenizer.bsq.group_basis": (c["group_size"],),
    }
    for i in range(c["n_enc_layers"] - 1):
        keys.update(_block(f"encoder.{i}", d, c["ff_dim"], c["n_heads"]))
    for i in range(c["n_dec_layers"] - 1):
        keys.update(_block(f"decoder.{i}", d, c["ff_dim"], c["n_heads"]))
    return keys


def reference_predictor_keys(c: dict) -> dict[str, tuple]:
    d, v1, v2 = c["d_model"], 2 ** c["s1_bits"], 2 ** c["s2_bits"]
    keys = {
        "embedding.emb_s1.weight": (v1, d),
        "embedding.emb_s2.weight": (v2, d),
        "embedding.fusion_proj.weight": (d, 2 * d),
        "embedding.fusion_proj.bias": (d,),
        "norm.weight": (d,),
        "dep_layer.norm.weight": (d,),
        "dep_layer.cross_attn.rotary.inv_freq": (d // 4 // 2,),
        "head.proj_s1.weight": (v1, d),
        "head.proj_s1.bias": (v1,),
        "head.proj_s2.weight": (v2, d),
        "head.proj_s2.bias": (v2,),
    }
    suffix = "weight" if c["learn_te"] else "emb.weight"
    for name, size in (("minute", 60), ("hour", 24), ("weekday", 7), ("day", 32), ("month", 13)):
        keys[f"time_emb.{name}_embed.{suffix}"] = (size, d)
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        keys[f"dep_layer.cross_attn.{p}.weight"] = (d, d)
        keys[f"dep_layer.cross_attn.{p}.bias"] = (d,)
    for i in range(c["n_layers"]):
        keys.update(_block(f"transformer.{i}", d, c["ff_dim"], c["n_heads"]))
    return keys


def _write_reference_layout(directory, cfg: dict, keys: dict[str, tuple]) -> dict[str, torch.Tensor]:
    directory.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    state = {}
    for name, shape in keys.items():
        if name.endswith("basis"):
            state[name] = 2 ** torch.arange(shape[0] - 1, -1, -1)
        elif name.endswith("inv_freq"):
            head_dim = 2 * shape[0]
            state[name] = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        else:
            state[name] = torch.randn(shape, generator=g) * 0.1
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(cfg))
    return state


@pytest.mark.parametrize("learn_te", [True, False])
def test_reference_layout_predictor_loads(tmp_path, learn_te):
    cfg = {**MODEL_CFG, "learn_te": learn_te}
    state = _write_reference_layout(tmp_path / "m", cfg, reference_predictor_keys(cfg))
    model = Kronos.from_pretrained(tmp_path / "m")
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k


def test_reference_layout_tokenizer_loads(tmp_path):
    state = _write_reference_layout(tmp_path / "t", TOK_CFG, reference_tokenizer_keys(TOK_CFG))
    tok = KronosTokenizer.from_pretrained(tmp_path / "t")
    assert set(tok.state_dict()) == set(state)
    s1, s2 = tok.encode(torch.randn(2, 7, 6), half=True)
    assert s1.shape == (2, 7) and int(s1.max()) < 16 and int(s2.min()) >= 0


def test_saved_checkpoint_has_reference_keys_and_config(tmp_path, tiny_pair):
    tok, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "t")
    m_cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    t_cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    assert set(m_cfg) == set(MODEL_CFG)
    assert set(t_cfg) == set(TOK_CFG)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in saved.items()} == reference_predictor_keys(m_cfg)
    saved_t = load_file(str(tmp_path / "t" / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in saved_t.items()} == reference_tokenizer_keys(t_cfg)


def test_round_trip_gives_same_outputs(tmp_path, tiny_pair):
    tok, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    again = Kronos.from_pretrained(tmp_path / "m")
    s1 = torch.randint(0, 16, (2, 9))
    s2 = torch.randint(0, 16, (2, 9))
    stamp = torch.zeros(2, 9, 5)
    a = model.decode_s1(s1, s2, stamp)[0]
    b = again.decode_s1(s1, s2, stamp)[0]
    assert torch.equal(a, b)


def test_save_replaces_existing_checkpoint_whole(tmp_path, tiny_pair):
    tok, _ = tiny_pair
    tok.save_pretrained(tmp_path / "t")
    tok.save_pretrained(tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_missing_directory_is_named_as_a_path(tmp_path):
    with pytest.raises(KronosError, match="taken for a local path"):
        resolve_checkpoint(tmp_path / "nowhere")


def test_a_preset_is_named_as_weights_to_train_not_as_a_path():
    with pytest.raises(KronosError, match="preset:tiny names an untrained architecture") as err:
        resolve_checkpoint("preset:tiny")
    assert "taken for" not in str(err.value)


def test_unreachable_hub_id_says_what_it_was_taken_for(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(KronosError, match="taken for a Hugging Face Hub id"):
        resolve_checkpoint("NeoQuasar/Kronos-small")


def test_corrupt_safetensors_is_a_user_error(tmp_path, tiny_pair):
    _, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(KronosError, match="not a readable safetensors"):
        Kronos.from_pretrained(tmp_path / "m")


def test_weights_that_do_not_fit_the_config(tmp_path, tiny_pair):
    _, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["n_layers"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KronosError, match="missing: transformer.2"):
        Kronos.from_pretrained(tmp_path / "m")


def test_tokenizer_checkpoint_given_as_predictor(tiny_checkpoints):
    tok_dir, _ = tiny_checkpoints
    with pytest.raises(KronosError, match="predictor checkpoint"):
        Kronos.from_pretrained(tok_dir)


def test_recorded_conventions_are_ignored_by_a_reference_style_loader(tmp_path, tiny_pair):
    """Our checkpoints add a `kronos_cli` block to config.json; huggingface_hub's mixin, as the reference uses it
    (an `__init__` with exactly the config's fields), builds the model from the fields it knows and ignores it."""
    from huggingface_hub import PyTorchModelHubMixin

    from kronos_cli.model.checkpoint import read_conventions

    _, model = tiny_pair
    model.save_pretrained(tmp_path / "m", {"max_context": 128, "lookback_window": 60})
    assert json.loads((tmp_path / "m" / "config.json").read_text())["kronos_cli"]["lookback_window"] == 60
    assert read_conventions(tmp_path / "m") == Conventions(max_context=128, lookback_window=60)

    class ReferenceKronos(torch.nn.Module, PyTorchModelHubMixin):  # the reference's constructor signature
        def __init__(
            self,
            s1_bits,
            s2_bits,
            n_layers,
            d_model,
            n_heads,
            ff_dim,
            ffn_dropout_p,
            attn_dropout_p,
            resid_dropout_p,
            token_dropout_p,
            learn_te,
        ):
            super().__init__()
            self.kwargs = dict(s1_bits=s1_bits, n_layers=n_layers, d_model=d_model, learn_te=learn_te)

    ref = ReferenceKronos.from_pretrained(str(tmp_path / "m"))
    assert ref.kwargs == {
        "s1_bits": model.config.s1_bits,
        "n_layers": model.config.n_layers,
        "d_model": model.config.d_model,
        "learn_te": model.config.learn_te,
    }
    assert Kronos.from_pretrained(tmp_path / "m").config == model.config  # and ours reads both layouts
    model.save_pretrained(tmp_path / "plain")
    assert read_conventions(tmp_path / "plain") == Conventions()


def _edited_config(tmp_path, tiny_pair, **fields):
    _, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, **fields}))
    return tmp_path / "m"


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"s1_bits": 30, "s2_bits": 30}, "s1_bits must be an integer from 1 to 20, got 30"),
        ({"d_model": "32"}, "d_model must be an integer from 1 to 16384, got '32'"),
        ({"n_heads": 0}, "n_heads must be an integer from 1 to 1024, got 0"),
        ({"n_layers": True}, "n_layers must be an integer from 1 to 256, got True"),
        ({"ff_dim": 64.0}, "ff_dim must be an integer from 1 to 65536, got 64.0"),
        ({"learn_te": "yes"}, "learn_te must be true or false, got 'yes'"),
        ({"token_dropout_p": 2.0}, "token_dropout_p must be a number from 0 to 1, got 2.0"),
        ({"ffn_dropout_p": None}, "ffn_dropout_p must be a number from 0 to 1, got None"),
    ],
)
def test_a_config_out_of_bounds_names_the_file_and_the_field(tmp_path, tiny_pair, built_on, fields, needle):
    directory = _edited_config(tmp_path, tiny_pair, **fields)
    with pytest.raises(KronosError, match=re.escape(needle)) as err:
        Kronos.from_pretrained(directory)
    assert str(err.value).startswith(str(directory / "config.json")) and "\n" not in str(err.value)
    assert built_on == []  # refused before anything was built, even on the meta device


def test_claimed_sizes_are_checked_against_the_weights_before_the_model_is_built(tmp_path, tiny_pair, built_on):
    """Bits within bounds but beyond the tensors: compared on the meta device, so nothing of that size is allocated."""
    directory = _edited_config(tmp_path, tiny_pair, s1_bits=12, s2_bits=12)
    with pytest.raises(KronosError, match=r"do not fit its config.json \(wrong shape: embedding.emb_s1.weight"):
        Kronos.from_pretrained(directory)
    assert built_on == ["meta"]


def test_legacy_pytorch_model_bin_loads(tmp_path, tiny_pair):
    _, model = tiny_pair
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    again = Kronos.from_pretrained(tmp_path / "m")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_a_bundle_records_the_runs_calendar_and_old_bundles_load_without_one(tmp_path, tiny_pair):
    from kronos_cli.model.bundle import load_bundle, write_bundle

    tok, model = tiny_pair
    data = {"max_context": 64, "clip": 5.0, "lookback_window": 30, "predict_window": 5}
    write_bundle(tok, model, tmp_path / "fx.pth", {**data, "calendar": "forex"})
    assert load_bundle(tmp_path / "fx.pth")[2].calendar == "forex"
    write_bundle(tok, model, tmp_path / "old.pth", data)
    assert load_bundle(tmp_path / "old.pth")[2].calendar is None
