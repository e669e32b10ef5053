"""The pictures of a run, drawn from its first seed's results with :mod:`infaug.report`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from infaug import report
from infaug.models import Generator
from infaug.flow import displacement
from infaug.train.loop import MethodResult
from infaug.train.task import Task

__all__ = ["draw_pictures", "toy2d_row"]


def draw_pictures(out: Path, task: Optional[Task], results: dict[str, MethodResult], gan: dict) -> list:
    """Writes the PNGs; returns (caption, file name) pairs for the report."""
    if task is None:
        return []
    pictures = []
    rng = torch.Generator().manual_seed(0)
    if task.kind == "images":
        # 12 held-out samples spread over the classes (the rows are sorted by index, often by class)
        rows = task.holdout_rows[torch.linspace(0, len(task.holdout_rows) - 1, 12).long()]
        x = task.train[0][rows]
        augmented = {}
        for name, result in results.items():
            if result.augment is not None:
                with torch.no_grad():
                    augmented[name] = torch.cat([result.augment(x, rng) for _ in range(2)])
        if augmented:
            report.save_augmentations(torch.cat([x, x]), augmented, out / "augmentations.png")
            pictures.append(("Held-out training digits (top) and two augmentations of each by every method", "augmentations.png"))
        proposed = results.get("proposed")
        if proposed is not None and proposed.encoder is not None:
            generator = proposed.generator
            if isinstance(generator, Generator):
                with torch.no_grad():
                    theta_w, theta_b, _, _ = generator.transform_parameters(proposed.encoder(x[:8], generator=rng))
                    flows = displacement(theta_w, theta_b, smooth=generator.smooth)
                report.save_flow_fields(flows, out / "flows.png", images=x[:8])
                pictures.append(("Flow fields of E's augmentations (the smoothed displacement, in pixels)", "flows.png"))
        if proposed is not None and proposed.holdout_i_aug:
            report.save_influence_histogram(
                {{"random_g": "before training E (G's prior)", "proposed": "after training E"}.get(k, k): v
                 for k, v in proposed.holdout_i_aug.items()},
                out / "influence.png",
                title="I_aug on held-out labelled samples, at the last round's F",
            )
            pictures.append(("Predicted influence of the augmentations on samples E never saw", "influence.png"))
        if proposed is not None and proposed.encoder_history:
            report.save_curves(
                {f"round {k + 1}": values for k, values in enumerate(proposed.encoder_history)},
                out / "encoder.png", title="Training E: the mean I_aug of each step's batch", xlabel="E step",
            )
            pictures.append(("E's training: the mean I_aug of its augmentations, step by step in each round", "encoder.png"))
        if gan.get("generator_loss"):
            report.save_curves(
                {"image critic distance": gan["image_distance"], "flow critic distance": gan["flow_distance"]},
                out / "gan.png", title="G's WGAN-GP pre-training", xlabel="generator step",
            )
            pictures.append(("G's pre-training: the critics' Wasserstein estimates", "gan.png"))
    return pictures


def toy2d_row(title: str, task: Task, results: dict[str, MethodResult]) -> dict:
    """One row of the paper's Figure 3 from a toy2d run: F without augmentation before, F trained
    with E's translations after."""
    before, after = results["none"].model, results["proposed"].model
    rng = torch.Generator().manual_seed(0)
    x, y = task.train
    with torch.no_grad():
        moved = results["proposed"].augment(x, rng)

    def probability(model):
        def predict(points: torch.Tensor) -> torch.Tensor:
            model.eval()
            with torch.no_grad():
                return torch.softmax(model(points.to(x.device)), 1)[:, 1].cpu()

        return predict

    return {
        "title": title,
        "train": (x.cpu(), y.cpu()),
        "validation": (task.validation[0].cpu(), task.validation[1].cpu()),
        "augmented": (moved.cpu(), y.cpu()),
        "augmented_from": x.cpu(),
        "predict_before": probability(before),
        "predict_after": probability(after),
    }
