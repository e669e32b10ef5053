"""infaug.train.modes: the modes and flags a block changes come back, also when it raises."""

import pytest
from torch import nn

from infaug.train.modes import evaluating, frozen


@pytest.mark.parametrize("training", [True, False])
def test_evaluating_restores_the_mode_when_the_block_raises(training):
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(net):
            assert not net.training and not net[1].training
            raise RuntimeError("inside")
    assert net.training is training and net[1].training is training


def test_frozen_restores_each_parameter_flag_and_the_mode_when_the_block_raises():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2).eval()
    a.bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"):
        with frozen(a, b):
            assert not any(p.requires_grad for p in [*a.parameters(), *b.parameters()])
            assert not a.training and not b.training
            raise RuntimeError("inside")
    assert a.weight.requires_grad and not a.bias.requires_grad and all(p.requires_grad for p in b.parameters())
    assert a.training and not b.training
