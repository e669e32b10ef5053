"""The last-layer check: the influence prediction against retraining F's last layer."""

import torch

from infaug.diagnose import last_layer_check
from infaug.models import AllConvNet
from infaug.report import _check_table, check_rows


def test_prediction_matches_retraining_the_last_layer_for_small_replacements():
    torch.manual_seed(0)
    model = AllConvNet(1, 3, width=4).eval()
    x, y = torch.rand(90, 1, 12, 12), torch.arange(90) % 3
    val = (torch.rand(30, 1, 12, 12), torch.arange(30) % 3)
    augmented = {"noise": (x + 0.05 * torch.randn_like(x)).clamp(0, 1), "flip": x.flip(3)}
    check = last_layer_check(model, (x, y), val, augmented, damping=0.01, shares=(0.05, 0.5))
    assert set(check) == {"noise", "flip"}
    for rows in check.values():
        small = rows[0]
        assert small["share"] == 0.05 and small["actual"] != 0
        assert abs(small["predicted"] - small["actual"]) < 0.1 * abs(small["actual"]), small
    rows = check_rows({k: [v] for k, v in check.items()})
    assert len(rows) == 4 and "flip" in _check_table({k: [v] for k, v in check.items()})
