"""What E learned at a fully trained F (tune.py --horizon, encoder.train_at = "end"), on the tuning
seed's training digits: the size of E's mean against its noise, how far its augmentations move the
digits, and how pass 1's F (the F that E was trained against) classifies them, against G's prior.
Reads the trial's checkpoints (results/mnist/tuning/SETTING/checkpoints, kept on the machine that
ran it); uses no test digit.

    python results/mnist/horizon_check.py --setting 1pct
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from infaug.augmenter import Augmenter
from infaug.config import load_preset
from infaug.run import pretrain
from infaug.train.checkpoint import Checkpoints
from infaug.train.seeds import rng as seeded
from infaug.train.task import build_task, load_pool


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setting", default="1pct", choices=["1pct", "10pct"])
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    args = parser.parse_args()
    folder = Path(__file__).resolve().parent / "tuning" / args.setting
    config = load_preset(f"mnist-{args.setting}").replace({"data.data_dir": args.data_dir, "encoder.train_at": "end", "encoder.shrink": [1.0]})
    pool, official_test = load_pool(config)
    task = build_task(config, args.seed, torch.device("cpu"), pool, official_test)
    checkpoints = Checkpoints(folder / "checkpoints")
    generator, _, _ = pretrain(task, config, args.seed, checkpoints)
    name = f"seed{args.seed}-proposed-horizon0"
    first = torch.load(folder / "checkpoints" / f"{name}-pass1.pt", weights_only=True)
    trained = torch.load(folder / "checkpoints" / f"{name}-E.pt", weights_only=True)
    model = task.make_classifier()
    model.load_state_dict(first["trainer"]["model"])
    model.eval()
    prior, learned = task.make_encoder(), task.make_encoder()
    prior.load_state_dict(first["encoder"])
    learned.load_state_dict(trained["encoder"])
    x, y = task.train
    out = {"setting": args.setting, "seed": args.seed, "pass1_val_loss": first["result"]["val_loss"]}
    with torch.no_grad():
        for label, encoder in (("prior", prior), ("E", learned)):
            encoder.eval()
            mu = encoder.mean(x)
            augmented = Augmenter(generator, encoder)(x, generator=seeded(args.seed, "horizon check"))
            logits = model(augmented)
            out[label] = {
                "mean_norm_over_noise_norm": float(mu.norm(dim=1).mean() / (encoder.noise * mu.shape[1] ** 0.5)),
                "pixel_rms_change": float((augmented - x).square().mean().sqrt()),
                "pass1_F_accuracy": float((logits.argmax(1) == y).float().mean()),
                "pass1_F_loss": float(torch.nn.functional.cross_entropy(logits, y)),
            }
    print(json.dumps(out, indent=1))
    (folder / f"horizon-check-seed{args.seed}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
