"""The pictures and the HTML report of an ``infaug run`` (infaug.report)."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from infaug import report


def assert_png(path, min_width=100, min_height=50):
    """``path`` is a real PNG of a plausible size, with no temporary file left next to it."""
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.width >= min_width and picture.height >= min_height
        size = picture.size
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 1.0, "the picture is blank"
    assert not list(path.parent.glob("*.tmp"))
    return size


METRICS = {
    "methods": {
        "none": {"test_accuracy": [0.9, 0.92, 0.94], "test_loss": [0.3, 0.2, 0.1], "val_loss": [0.5, 0.3],
                 "seconds": [10.0, 12.0, 14.0]},
        "<b>x": {"test_accuracy": [0.95], "test_loss": [0.15], "val_loss": [0.25], "seconds": [3.0]},
        "skipped": {"test_accuracy": [], "test_loss": [], "val_loss": [], "seconds": []},
    },
    "influence": {"heuristic": -0.0123, "learned": -0.0456},
    "config": {"seeds": 3, "dataset": "mnist & <co>"},
}


@pytest.mark.parametrize("channels", [1, 3])
def test_save_augmentations_writes_one_row_per_method(tmp_path, channels):
    torch.manual_seed(0)
    originals = torch.rand(4, channels, 28, 28)
    augmented = {"heuristic": originals.flip(-1), "learned": originals * 2 - 0.5}  # out of range: clamped
    path = report.save_augmentations(originals, augmented, tmp_path / "pics" / "augmentations.png")
    assert path == tmp_path / "pics" / "augmentations.png"
    width, height = assert_png(path)
    few = report.save_augmentations(originals, {}, tmp_path / "originals.png")
    assert Image.open(few).height < height  # three rows are taller than one


def test_save_augmentations_names_the_bad_argument(tmp_path):
    originals = torch.rand(4, 1, 28, 28)
    message = "augmented['heuristic'] must have shape (4, 1, 28, 28), got (3, 1, 28, 28)"
    with pytest.raises(ValueError, match=re.escape(message)):
        report.save_augmentations(originals, {"heuristic": torch.rand(3, 1, 28, 28)}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=re.escape("augmented['x'] must have shape (4, 1, 28, 28)")):
        report.save_augmentations(originals, {"x": torch.rand(4, 3, 28, 28)}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="originals"):
        report.save_augmentations(torch.rand(4, 2, 28, 28), {}, tmp_path / "a.png")
    assert not list(tmp_path.iterdir())


def test_save_flow_fields_with_and_without_images(tmp_path):
    displacements = torch.zeros(5, 2, 16, 16)
    displacements[:, 0] = 0.1  # 0.8 pixels right everywhere
    displacements[:, 1] = torch.linspace(-0.2, 0.2, 16).view(16, 1)
    images = torch.rand(5, 3, 16, 16)
    plain = report.save_flow_fields(displacements, tmp_path / "flow.png", columns=3, step=2)
    over = report.save_flow_fields(displacements, tmp_path / "flow_images.png", images=images, columns=3)
    assert assert_png(plain) == assert_png(over)
    width, height = Image.open(plain).size
    assert width > height  # 3 columns by 2 rows of square panels
    with pytest.raises(ValueError, match="images must have shape"):
        report.save_flow_fields(displacements, tmp_path / "bad.png", images=torch.rand(5, 1, 8, 8))


def test_save_influence_histogram(tmp_path):
    torch.manual_seed(0)
    distributions = {"before training E": torch.randn(200) + 1, "after training E": torch.randn(200) - 1,
                     "heuristic": torch.randn(50)}
    assert_png(report.save_influence_histogram(distributions, tmp_path / "hist.png", title="I_aug (test)"))
    with pytest.raises(ValueError):
        report.save_influence_histogram({"empty": torch.tensor([])}, tmp_path / "none.png")


def test_save_toy2d_figure_with_simple_callables(tmp_path):
    torch.manual_seed(0)
    points = torch.randn(40, 2)
    labels = (points[:, 0] > 0).long()
    moved = points + 0.3 * torch.randn(40, 2)
    calls = []

    def predict(shift):
        def probability(x):
            assert x.dtype == torch.float32 and x.dim() == 2 and x.shape[1] == 2
            calls.append(x.shape[0])
            return torch.sigmoid(4 * (x[:, 0] - shift))
        return probability

    row = {"title": "linear", "train": (points, labels), "validation": (points[:20], labels[:20]),
           "augmented": (moved, labels), "predict_before": predict(0.5), "predict_after": predict(0.0)}
    rows = [row, dict(row, title="with arrows", augmented_from=points)]
    width, height = assert_png(report.save_toy2d_figure(rows, tmp_path / "toy.png"), 600, 400)
    assert width > height and len(calls) == 8  # four panels per row, two rows
    with pytest.raises(ValueError, match=re.escape("row['train']")):
        report.save_toy2d_figure([dict(row, train=(points, labels[:5]))], tmp_path / "bad.png")


def test_accuracy_rows_mean_and_sample_std():
    rows = report.accuracy_rows(METRICS)
    assert [row["method"] for row in rows] == ["none", "<b>x"]  # in order, empty one skipped
    first, second = rows
    assert first["seeds"] == 3
    assert first["test_accuracy_mean"] == pytest.approx(0.92)
    assert first["test_accuracy_std"] == pytest.approx(0.02)  # ddof=1 (ddof=0 would be 0.0163)
    assert first["test_loss_mean"] == pytest.approx(0.2) and first["test_loss_std"] == pytest.approx(0.1)
    assert first["val_loss_mean"] == pytest.approx(0.4) and first["seconds_mean"] == pytest.approx(12.0)
    assert second["seeds"] == 1 and second["test_accuracy_std"] == 0.0 and second["test_loss_std"] == 0.0
    assert second["test_accuracy_mean"] == pytest.approx(0.95)


def test_accuracy_table_bolds_the_best_and_escapes():
    table = report.accuracy_table(METRICS)
    assert table.startswith("<table") and table.endswith("</table>")
    assert "92.00 ± 2.00" in table and "<b>95.00 ± 0.00</b>" in table and "<b>92.00" not in table
    assert "0.2000 ± 0.1000" in table and "0.4000" in table and "12.0" in table
    assert "&lt;b&gt;x" in table and "<b>x" not in table and "skipped" not in table


def test_summary_table_is_aligned_text():
    text = report.summary_table(METRICS)
    lines = text.splitlines()
    assert "none" in text and "<b>x" in text and "92.00" in text and "95.00 ± 0.00" in text
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # header, rule, two rows
    assert [m.start() for m in re.finditer(r"\|", lines[0])] == [m.start() for m in re.finditer(r"\|", lines[2])]


def test_write_report(tmp_path):
    pictures = [("Augmentations <MNIST>", "pics/augmentations.png"), ("Flow fields", "flow.png")]
    path = report.write_report(tmp_path / "run", METRICS, pictures, title="run & test")
    assert path == tmp_path / "run" / "report.html"
    assert not list(path.parent.glob("*.tmp"))
    page = path.read_text(encoding="utf-8")
    assert "<title>run &amp; test</title>" in page
    assert report.accuracy_table(METRICS) in page
    assert "&lt;b&gt;x" in page and "<b>x" not in page
    assert 'src="pics/augmentations.png"' in page and 'src="flow.png"' in page
    assert "<h2>Augmentations &lt;MNIST&gt;</h2>" in page and "<h2>Flow fields</h2>" in page
    assert "mean I_aug on held-out labelled samples (lower = predicted better)" in page
    assert "-0.0456" in page and "heuristic" in page
    assert "<details>" in page and "mnist &amp; &lt;co&gt;" in page and "base64" not in page
    bare = report.write_report(tmp_path / "bare", {"methods": {}}, []).read_text(encoding="utf-8")
    assert "I_aug" not in bare and "<details>" not in bare and "<img" not in bare
