"""The package's rooms import one way (README's layout table), and importing mlgen changes nothing global."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlgen"

# Each room and the rooms it may import (README, "Layout"). A module's room is its first
# package below mlgen (or the module itself at the top level).
BASE = {"errors", "version", "config", "artifacts", "progress"}
ALLOWED = {
    "errors": set(),
    "version": set(),
    "progress": set(),
    "config": {"errors"},
    "artifacts": {"errors"},
    "data": {"errors"},
    "eval": {"errors", "data"},
    "linear": {"errors", "config", "data"},
    "decisions": BASE | {"data", "eval"},
    "nn": BASE | {"data", "eval", "decisions"},
    "predictors": BASE | {"data", "eval", "linear", "decisions", "nn"},
    "registry": BASE | {"data", "eval", "predictors"},
    "estimator": BASE | {"data", "eval", "registry"},
    "compare": BASE | {"data", "eval", "registry"},
    "cli": BASE | {"data", "eval", "decisions", "nn", "predictors", "registry", "compare"},
    "__main__": {"cli"},
    "__init__": BASE | {"data", "registry", "estimator"},
}
# The only room that imports TensorFlow or Keras.
TENSORFLOW_ROOMS = {"nn"}
# The networks are their layers and how they run (issue 26): they neither search nor run
# inference, nor say what they train on (`mlgen.nn.targets` imports them, not the reverse).
NETWORKS = ("mlgen.nn.backbone", "mlgen.nn.label_sequence", "mlgen.nn.binary_relevance")
NOT_FOR_NETWORKS = ("mlgen.nn.decoding", "mlgen.nn.inference", "mlgen.nn.targets")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts[0]


def _imports(path: Path):
    """Every module name `path` imports, at any depth (lazy imports in functions count too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)  # a module, or a name in one


def _room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "mlgen" and len(parts) > 1 else None


def _name(value) -> str:
    return str(value.relative_to(PACKAGE)) if isinstance(value, Path) else value


@pytest.mark.parametrize("path,room", list(_modules()), ids=_name)
def test_each_room_imports_only_the_rooms_below_it(path, room):
    allowed = ALLOWED[room] | {room}
    for name in _imports(path):
        target = _room(name)
        if target is not None:
            assert target in allowed, f"{path.relative_to(PACKAGE)} imports {name} ({room} may: {sorted(allowed)})"
        top = name.split(".")[0]
        if top in ("tensorflow", "keras"):
            assert room in TENSORFLOW_ROOMS, f"{path.relative_to(PACKAGE)} imports {name}: only mlgen.nn may"


@pytest.mark.parametrize("network", NETWORKS)
def test_a_network_imports_no_decoding_inference_or_targets(network):
    path = PACKAGE.joinpath(*network.split(".")[1:]).with_suffix(".py")
    imported = [name for name in _imports(path) if name.startswith(NOT_FOR_NETWORKS)]
    assert not imported, f"{network} imports {imported}"


def test_importing_the_networks_imports_no_decoding_inference_or_targets():
    """Not even through another module, at import time."""
    code = f"import sys; import {', '.join(NETWORKS)}; print([m for m in {NOT_FOR_NETWORKS!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_importing_mlgen_changes_no_global_state_and_imports_nothing_heavy():
    """`import mlgen` and the CLI's start (`mlgen --help`, bad-input errors) stay fast and side-effect free."""
    code = (
        "import json, os, sys; before = dict(os.environ); import mlgen, mlgen.cli, mlgen.registry; "
        "print(json.dumps({'environ': dict(os.environ) == before, 'heavy': sorted(m for m in "
        "('tensorflow', 'keras', 'matplotlib', 'sklearn', 'scipy') if m in sys.modules)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"environ": True, "heavy": []}


def test_linear_br_runs_without_tensorflow(tiny_csvs, tmp_path):
    code = (
        "import sys; from mlgen.cli import main; "
        f"status = main(['train', '--model', 'linear-br', '--train', {str(tiny_csvs['train'])!r}, "
        f"'--out', {str(tmp_path / 'linear')!r}]); "
        "assert status == 0; import mlgen; mlgen.load(" + repr(str(tmp_path / "linear")) + ").predict(['wheat']); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
