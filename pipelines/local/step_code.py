"""Modules of ``steps/`` used by the local runtime itself, loaded by path (steps are not a package of
``pipelines``; the runtime already runs them from the checkout, as it runs ``containers/serving``)."""
from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from pipelines.paths import STEPS_DIR


def module_at(path: Path, name: str) -> ModuleType:
    """The Python file at `path` as a module named `name` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@cache
def step_module(relative_path: str) -> ModuleType:
    """``steps/<relative_path>`` as a module (e.g. ``monitor/capture.py``); it must import only the
    standard library and the packages the control plane has."""
    path = STEPS_DIR / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the local runtime needs the repository's steps/ folder")
    return module_at(path, "continuum_steps_" + relative_path.removesuffix(".py").replace("/", "_"))
