"""infaug's modules import only downwards, and never the pure-torch reference.

The layers, lowest first: the base (helpers, the build, the configuration, the flow's geometry), the
op layer, the influence engine, models with their augmentations and data, training, and the run with
its report and CLI. The test reads every module's imports (top-level and inside functions) from its
source, so a new upward import fails here before it makes ``import infaug.config`` compile the
extension or ties the runtime to the test oracle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "infaug"

# Each layer: the module names (a name ending in "." stands for a whole subpackage).
LAYERS = [
    ("base", ["infaug.util.", "infaug.util", "infaug._build", "infaug.config", "infaug.flow"]),
    ("ops", ["infaug", "infaug._extension", "infaug.ops", "infaug._C"]),
    ("engine", ["infaug.engine"]),
    ("models", ["infaug.models.", "infaug.models", "infaug.data.", "infaug.data", "infaug.augmentations",
                "infaug.baselines", "infaug.augmenter", "infaug.distributed", "infaug.viz", "infaug.ground_truth"]),
    ("train", ["infaug.train.", "infaug.train", "infaug.diagnose", "infaug.learn"]),
    ("run", ["infaug.run", "infaug.report", "infaug.pictures", "infaug.cli"]),
]
REFERENCE = "infaug.reference"


def layer_of(module: str) -> int:
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith(".") and module.startswith(name)):
                return index
    raise KeyError(module)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists() or name == "infaug._C"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each infaug module the file imports, wherever in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from infaug import ops` imports the module infaug.ops; `from infaug import warp`, a name
            # of the package.
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.append((node.lineno, candidate if is_module(candidate) else module))
    return [(line, name) for line, name in found if name == "infaug" or name.startswith("infaug.")]


def violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        if name == REFERENCE:
            continue
        own = layer_of(name)
        for line, imported in imports(path):
            where = f"{path.relative_to(root.parent)}:{line}: {name} imports {imported}"
            if imported == REFERENCE:
                problems.append(f"{where}, the test oracle (runtime code must not use it)")
            elif layer_of(imported) > own:
                problems.append(f"{where}, which is above it ({LAYERS[layer_of(imported)][0]} over {LAYERS[own][0]})")
    return problems


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name != REFERENCE:
            layer_of(name)  # raises KeyError for a module the layers do not place


def test_imports_run_only_downwards():
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("config.py", "from infaug.augmentations import AffineRanges\n", "above it (models over base)"),
        ("engine.py", "def f():\n    from infaug.train import loop\n", "above it (train over engine)"),
        ("models/generator.py", "from infaug.reference import base_grid\n", "the test oracle"),
        ("flow.py", "from infaug import ops\n", "above it (ops over base)"),
        ("train/loop.py", "from .. import run\n", "above it (run over train)"),
    ],
)
def test_the_check_catches_an_upward_import(tmp_path, module, source, expected):
    root = tmp_path / "infaug"
    path = root / module
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in ["__init__.py", "ops.py", "run.py", "reference.py", "train/__init__.py", "train/loop.py"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    path.write_text(source)
    global PACKAGE
    saved, PACKAGE = PACKAGE, root
    try:
        found = violations(root)
    finally:
        PACKAGE = saved
    assert len(found) == 1 and expected in found[0], found


def test_the_configuration_imports_without_the_extension():
    code = (
        "import sys, infaug.config, infaug.util.seeds, infaug.flow\n"
        "loaded = [m for m in ('infaug._C', 'infaug.ops', 'infaug._extension', 'infaug.augmentations') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import infaug\n"
        "assert infaug._C.torch_version  # the extension as a lazy attribute, loaded by infaug.ops\n"
        "assert 'infaug._C' in sys.modules and infaug.warp is sys.modules['infaug.ops'].warp\n"
        "import os\n"
        "assert os.path.dirname(infaug._C.__file__) == os.path.dirname(infaug.__file__), infaug._C.__file__  # the built one\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the built extension loads; nothing is compiled again


def long_functions(root: Path = PACKAGE, limit: int = 60) -> list[str]:
    """Functions over ``limit`` lines whose ``def`` line carries no ``# long: <why>``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                header = lines[node.lineno - 1 : node.body[0].lineno - 1]  # the def, over its lines
                if length > limit and not any("# long: " in line for line in header):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.name} has {length} lines")
    return found


def test_no_function_is_long_without_its_reason(tmp_path):
    assert long_functions() == []
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    (tmp_path / "long.py").write_text(f"def plain():\n{body}\n\ndef excused():  # long: a table\n{body}")
    assert [line.split(": ")[1] for line in long_functions(tmp_path)] == ["plain has 61 lines"]
