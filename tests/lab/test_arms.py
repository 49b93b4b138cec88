"""lab/arms.py's encoder-only arm: a step moves the encoder and nothing the decoder reads."""

from __future__ import annotations

import torch
from arms import freeze_decoder

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.objective import rd_loss
from c2f_format.train.state import make_optimizer


def test_an_encoder_only_step_leaves_every_decoder_weight_as_it_was() -> None:
    torch.manual_seed(0)
    model = C2FModel(ModelConfig(gain_schedule="fixed"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert 0 < freeze_decoder(model) < sum(p.numel() for p in model.parameters())
    opt = make_optimizer(model, 1e-3)
    rd_loss(model, torch.rand(2, 3, 64, 64), torch.tensor([0.0, 5.0]))["loss"].backward()
    opt.step()
    model.project_gains()
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert "g_a.0.weight" in moved and "h_a2.linear.weight" in moved and "gain" in moved
    decoder = ("g_s_", "fuse_", "h_s", "p2.", "p3.", "preview_", "z1_", "inv_gain")
    assert not {k for k in moved if k.startswith(decoder)}
