"""learn_augmenter: infaug run's proposed on a user's own classifier, data and optimiser."""

import copy

import pytest
import torch
from torch import nn

import infaug
from infaug.config import Config
from infaug.learn import learn
from infaug.models import AllConvNet
from infaug.train.loop import run_method
from infaug.train.pretrain import pretrain
from infaug.util.seeds import derive
from infaug.train.task import tensor_task

QUICK = {"classifier.epochs": 4, "classifier.width": 4, "classifier.batch_size": 16, "generator.steps": 2,
         "generator.critic_steps": 1, "generator.batch_size": 16, "generator.hidden": 4, "generator.latent": 16,
         "generator.spatial_latent": 8, "encoder.steps": 2, "encoder.batch_size": 16, "encoder.width": 4, "loop.rounds": 2}


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=g), torch.arange(n) % 4


def test_learn_augmenter_equals_run_method_s_proposed():
    # The same model, data, seed and settings: learn() (what learn_augmenter returns the Augmenter of)
    # and run_method("proposed") on the same task give the same F, E, rounds and losses, bit for bit.
    config = Config().replace(QUICK)
    x, y = _data()
    train, validation, test = (x[:40], y[:40]), (x[40:52], y[40:52]), (x[52:], y[52:])
    torch.manual_seed(derive(3, "F"))
    model = AllConvNet(1, 4, width=4)
    theirs = copy.deepcopy(model)
    mine = learn(model, train, validation, test=test, unlabelled=x[52:], config=config, seed=3)
    task = tensor_task(theirs, train, validation, test, x[52:], config, 3)
    generator = pretrain(task, config, 3)[0]
    reference = run_method("proposed", task, config, 3, generator=generator)
    assert len(config.encoder.shrink) > 1 and all("shrink" in r for r in reference.rounds)  # judged, as the presets
    untimed = lambda rounds: [{k: v for k, v in r.items() if k != "encoder_seconds"} for r in rounds]  # noqa: E731
    assert untimed(mine.rounds) == untimed(reference.rounds) and mine.encoder_history == reference.encoder_history
    assert (mine.val_loss, mine.test_loss, mine.test_accuracy) == (reference.val_loss, reference.test_loss, reference.test_accuracy)
    for a, b in zip(model.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the user's model itself was trained
    for a, b in zip(mine.encoder.state_dict().values(), reference.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_learn_augmenter_trains_any_classifier_with_its_own_optimiser_and_leaves_the_rng_alone():
    config = Config().replace(QUICK | {"loop.rounds": 1})
    x, y = _data(48)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    state = torch.get_rng_state()
    augmenter = infaug.learn_augmenter(model, (x[:32], y[:32]), (x[32:], y[32:]), config=config, optimizer=optimizer)
    assert torch.equal(torch.get_rng_state(), state)
    assert optimizer.state and any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert isinstance(augmenter, infaug.Augmenter) and augmenter(x[:4]).shape == (4, 1, 16, 16)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:32], y[:32]), batch_size=8)
    again = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    again.load_state_dict(before)
    second = infaug.learn_augmenter(again, loader, (x[32:], y[32:]), config=config,
                                    optimizer=torch.optim.SGD(again.parameters(), lr=0.05, momentum=0.9))
    for a, b in zip(augmenter.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)  # a DataLoader of the same tensors: the same augmenter


def test_learn_augmenter_errors_name_what_is_wrong():
    x, y = _data(32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    with pytest.raises(ValueError, match=r"train: expected images \(N, C, H, W\) and labels \(N,\), got \(32, 256\)"):
        infaug.learn_augmenter(model, (x.flatten(1), y), (x, y))
    with pytest.raises(ValueError, match="has no nn.Linear layer"):
        infaug.learn_augmenter(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()), (x, y), (x, y))
    with pytest.raises(ValueError, match="data.encoder_holdout = 0.99 leaves none of the 2 training samples"):
        infaug.learn_augmenter(model, (x[:2], y[:2]), (x, y), config=Config().replace({"data.encoder_holdout": 0.99}))
