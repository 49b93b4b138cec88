"""lab/arms.py: the encoder-only arm moves nothing the decoder reads; an arm with a
replaced synthesis trains it alone and resumes with its optimiser's groups intact."""

from __future__ import annotations

from pathlib import Path

import torch
from arms import _two_layer, freeze_decoder, train_only
from shallow import DEEP_SYNTHESIS, SHALLOW_SYNTHESIS, ShallowC2F

from c2f_format.networks.model import C2FModel, ModelConfig
from c2f_format.train.objective import rd_loss
from c2f_format.train.state import Progress, load_state, make_optimizer, save_state


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


def test_a_replaced_synthesis_trains_alone_and_its_state_comes_back_in_its_groups(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    config = ModelConfig(gain_schedule="fixed", lambdas=[0.002, 0.02])
    model = ShallowC2F(config, "two-layer")
    # the line's weights for everything but the synthesis: the deep model's, here
    deep = C2FModel(config).state_dict()
    missing, unexpected = model.load_state_dict(deep, strict=False)
    assert missing and all(k.startswith(SHALLOW_SYNTHESIS) for k in missing)
    assert unexpected and all(k.startswith(DEEP_SYNTHESIS) for k in unexpected)

    opt = make_optimizer(model, 1e-3, 3.0, SHALLOW_SYNTHESIS)
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 10.0, 3.0]
    assert train_only(model, SHALLOW_SYNTHESIS) == sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(SHALLOW_SYNTHESIS)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rd_loss(model, torch.rand(2, 3, 64, 64), torch.tensor([0.0, 1.0]))["loss"].backward()
    opt.step()
    moved = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith(SHALLOW_SYNTHESIS) for k in moved)

    path = tmp_path / "state.pt"
    save_state(path, model, opt, Progress(step=1))
    back, back_opt, progress = load_state(
        path, torch.device("cpu"), 1e-3, _two_layer, 3.0, SHALLOW_SYNTHESIS
    )
    assert isinstance(back, ShallowC2F) and progress.step == 1
    assert [len(g["params"]) for g in back_opt.param_groups] == [
        len(g["params"]) for g in opt.param_groups
    ]
    # every Adam history lands on the parameter it belongs to
    for group, back_group in zip(opt.param_groups, back_opt.param_groups, strict=True):
        for p, q in zip(group["params"], back_group["params"], strict=True):
            assert p.shape == q.shape
            assert (p in opt.state) == (q in back_opt.state)
