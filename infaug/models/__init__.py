"""The learning system's networks: F (classifiers), G (generator), the critics and E."""

from infaug.models.classifier import MLP, AllConvNet, ResNet, resnet56
from infaug.models.critic import Critic
from infaug.models.encoder import Encoder, PointEncoder
from infaug.models.generator import Generator, TranslationGenerator, sampling_field

__all__ = [
    "AllConvNet", "Critic", "Encoder", "Generator", "MLP", "PointEncoder", "ResNet",
    "TranslationGenerator", "resnet56", "sampling_field",
]
