"""Training the learning system's parts, each a function that reads top to bottom:

    classifier.ClassifierTrainer, evaluate   F on originals plus augmentations, L2 = damping on its head
    gan.pretrain_generator                   G by WGAN-GP with the image and flow critics
    encoder.train_encoder                    E by influence, F and G fixed
    loop.run_method                          the alternating loop, the same for every method
"""

from infaug.train.classifier import ClassifierTrainer, evaluate, features, influence_engine
from infaug.train.encoder import encoder_loss, train_encoder
from infaug.train.gan import gradient_penalty, pretrain_generator
from infaug.train.loop import run_method

__all__ = [
    "ClassifierTrainer", "encoder_loss", "evaluate", "features", "gradient_penalty", "influence_engine",
    "pretrain_generator", "run_method", "train_encoder",
]
