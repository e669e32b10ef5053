"""Run by tests/test_distributed.py under torchrun: infaug.learn_augmenter with the same data on
every rank; each rank saves the weights of the Augmenter it got."""

import sys

import torch
from torch import nn

import infaug
from infaug import distributed
from infaug.config import Config

distributed.setup("cpu")
g = torch.Generator().manual_seed(0)
x, y = torch.rand(48, 1, 16, 16, generator=g), torch.randint(0, 3, (48,), generator=g)
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(256, 16), nn.ReLU(), nn.Linear(16, 3))
config = Config().replace({"generator.steps": 3, "generator.batch_size": 8, "generator.critic_steps": 1, "generator.hidden": 4,
                           "encoder.steps": 3, "encoder.batch_size": 16, "encoder.width": 8, "classifier.epochs": 2,
                           "classifier.batch_size": 16, "loop.rounds": 1})
augmenter = infaug.learn_augmenter(model, (x[:32], y[:32]), (x[32:], y[32:]), config=config)
torch.save({k: v.clone() for k, v in augmenter.state_dict().items()}, f"{sys.argv[1]}/rank{distributed.rank()}.pt")
distributed.cleanup()
