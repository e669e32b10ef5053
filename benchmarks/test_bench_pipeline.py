"""The learning system's steps with infaug's fused ops against the same steps in torch ops
(bench_pipeline.py), as pytest-benchmark groups: one group per (device, step) holding

    fused      the step through infaug.ops (augment, influence)
    reference  the same step through infaug.reference

The steps are bench_pipeline.py's, at the default preset's scale: training E (a batch of 256
through F, G's augment and influence, backward into E) and training F (64 originals plus their 64
augmentations by G); 32 and 16 with --bench-quick. Correctness first: both give the same loss and
the same gradients (the script's tolerances; on a GPU with TF32 off for the check).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List

import pytest
import torch

import bench_pipeline  # the script beside this file (conftest puts benchmarks/ on the path)
from infaug import ops as fused_ops, reference

STEPS = ["e_step", "f_step"]
CANDIDATES = {"fused": fused_ops, "reference": reference}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "step_name" in metafunc.fixturenames:
        metafunc.parametrize("step_name", STEPS)
    if "candidate" in metafunc.fixturenames:
        metafunc.parametrize("candidate", list(CANDIDATES))


_SETUP: Dict[str, dict] = {}


def steps(device: str, quick: bool) -> dict:
    """{(step name, candidate): (step, its parameters)} on bench_pipeline.setup's models and data,
    checked to agree (loss and gradients) between the two candidates; made once per device."""
    if device not in _SETUP:
        _SETUP.clear()
        model, generator, encoder, engine, images, labels = bench_pipeline.setup(torch.device(device))
        e_batch, f_batch = (32, 16) if quick else (256, 64)
        x, y = images[:e_batch], labels[:e_batch]
        e_optimizer = torch.optim.Adam(encoder.parameters(), lr=0)  # lr 0: every run sees the same E
        f_optimizer = torch.optim.SGD(model.parameters(), lr=0)
        fx, fy = images[:f_batch], labels[:f_batch]
        made = {}
        for candidate, ops in CANDIDATES.items():
            made[("e_step", candidate)] = (
                bench_pipeline.e_step(model, generator, encoder, engine, x, y, e_optimizer, ops), list(encoder.parameters()))
            made[("f_step", candidate)] = (bench_pipeline.f_step(model, generator, fx, fy, f_optimizer, ops), list(model.parameters()))
        with full_float32():
            for name in STEPS:
                check_agreement(name, *made[(name, "fused")], made[(name, "reference")][0])
        _SETUP[device] = {"steps": made, "batch": {"e_step": e_batch, "f_step": f_batch}}
    return _SETUP[device]


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """cuDNN's convolutions in full float32 rather than TF32 (its default on a GPU): the check
    compares the ops, and TF32's rounding of F's and G's convolutions would swamp their agreement.
    The timings run with the defaults, as training does."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_agreement(name: str, fused_step: Callable, params: List[torch.Tensor], reference_step: Callable) -> None:
    """The same loss and the same gradients through either set of ops (bench_pipeline.py's check)."""
    loss_fused = fused_step()
    grads_fused = [p.grad.clone() for p in params]
    loss_reference = reference_step()
    torch.testing.assert_close(loss_fused, loss_reference, rtol=1e-4, atol=1e-5, msg=f"{name}: loss")
    for index, (grad, p) in enumerate(zip(grads_fused, params)):
        # entries near zero are the sums of terms that cancel: absolute tolerance relative to the largest
        torch.testing.assert_close(grad, p.grad, rtol=1e-3, atol=1e-3 * float(p.grad.abs().max()) + 1e-7,
                                   msg=f"{name}: gradient of parameter {index}")


def test_pipeline_step(bench, quick, device, step_name, candidate):
    made = steps(device, quick)
    step, _ = made["steps"][(step_name, candidate)]
    batch = made["batch"][step_name]
    label = f"E step (batch {batch})" if step_name == "e_step" else f"F step ({batch} + {batch} augmented)"
    bench(step, torch.device(device), group=f"pipeline {device} {label}", candidate=candidate, step=step_name, batch=batch)


# ---- F's training step in its two layouts (classifier.channels_last) ---------------------------

LAYOUTS = {"fused": torch.channels_last, "nchw": torch.contiguous_format}  # "fused": the default layout


@pytest.mark.parametrize("width", [32, 64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_f_step_layout(bench, device, width, layout):
    """One step of ClassifierTrainer.train as infaug run takes it (64 originals plus 64 augmentations,
    AdamW, the non-finite check, the schedule), F at ``width`` in channels-last (the default,
    reported as "fused") against NCHW (the layout before ``classifier.channels_last``)."""
    from infaug.models import AllConvNet
    from infaug.train.classifier import ClassifierTrainer

    torch.manual_seed(0)
    model = AllConvNet(1, 10, width).to(device, memory_format=LAYOUTS[layout])
    trainer = ClassifierTrainer(model, total_epochs=10**6, steps_per_epoch=1, lr=1e-3, weight_decay=5e-4, damping=0.01)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 1, 28, 28, generator=g).to(device), torch.randint(0, 10, (64,), generator=g).to(device)

    def step():
        trainer.train(x, y, 1, augment=lambda v, rng: v.flip(3), batch_size=64, generator=torch.Generator().manual_seed(2))

    bench(step, torch.device(device), group=f"F step {device} width={width}", candidate=layout, warmup=2, width=width)
