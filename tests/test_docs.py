"""The documentation runs: every python block of the README and every docstring example."""

import doctest
import re
from pathlib import Path

import pytest

import infaug.augmentations
import infaug.augmenter
import infaug.baselines
import infaug.config
import infaug.data.datasets
import infaug.data.folder
import infaug.data.mnist
import infaug.data.sources
import infaug.data.splits
import infaug.data.toy2d
import infaug.engine
import infaug.learn
import infaug.models.classifier
import infaug.models.critic
import infaug.models.encoder
import infaug.models.generator
import infaug.ops
import infaug.train.checkpoint
import infaug.train.modes
import infaug.train.round_judge
import infaug.reference

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_blocks_run(index):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


MODULES = [
    infaug.ops, infaug.reference, infaug.engine, infaug.data.mnist, infaug.data.splits, infaug.data.toy2d,
    infaug.data.datasets, infaug.data.folder, infaug.data.sources, infaug.train.checkpoint, infaug.train.modes,
    infaug.train.round_judge, infaug.config, infaug.augmentations,
    infaug.augmenter, infaug.baselines, infaug.learn, infaug.models.classifier, infaug.models.critic, infaug.models.encoder,
    infaug.models.generator,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_has_blocks():
    assert len(BLOCKS) >= 2
