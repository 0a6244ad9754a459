"""steps/requirements.txt: complete for what the steps import, installed on SageMaker, checked locally."""
from __future__ import annotations

import ast
import io
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipelines.local.container import ContainerRoot, JobFailed
from pipelines.local.requirements import (
    RUNPROC_SKIP,
    check_requirements,
    check_source_archive,
    skip_pip_install,
    unmet_requirements,
)

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "steps"
REQUIREMENTS = STEPS / "requirements.txt"
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"yaml": "pyyaml", "sklearn": "scikit-learn", "rouge_score": "rouge-score", "lm_eval": "lm-eval"}
PROVIDED = {"torch"}  # the step image's own build (containers/images.yaml; constraints.txt's CPU pin locally)
OPTIONAL = {"bitsandbytes"}  # QLoRA only, on a GPU image that has it (extra "gpu")
FROM_THE_SAME_DISTRIBUTION = {"botocore": "boto3"}


def _requirement_names() -> set[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return {Requirement(line).name.lower() for line in lines if line}


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> first file importing it, over steps/ (its own modules and the stdlib left out)."""
    local = {path.stem for path in STEPS.glob("*.py")} | {"common", "inference"}
    found: dict[str, str] = {}
    for path in sorted(STEPS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_of_the_steps_is_a_requirement() -> None:
    names = _requirement_names()
    imports = _third_party_imports()
    assert {"transformers", "peft", "numpy", "pyarrow", "matplotlib", "lm_eval"} <= set(imports)
    missing = {module: where for module, where in imports.items()
               if module not in PROVIDED | OPTIONAL
               and DISTRIBUTIONS.get(module, FROM_THE_SAME_DISTRIBUTION.get(module, module)).replace("_", "-") not in names}
    assert missing == {}, f"add these to steps/requirements.txt: {missing}"
    assert "torch" not in names, "torch comes from the step image (containers/images.yaml): a torch line lets pip replace it"


def test_the_step_images_install_the_requirements_without_replacing_torch_and_match_the_local_one() -> None:
    """pip on each step image keeps its torch (every requirement, followed through its dependencies' metadata,
    is met by the image's torch), and that torch is the one the local runtime runs the steps with."""
    from pipelines.images import load_catalog, requirement_lines, unresolvable

    catalog = load_catalog()
    local_torch = metadata.version("torch").split("+")[0]
    for role in ("processing", "training"):
        for accelerator in ("cpu", "gpu"):
            image = catalog.for_step(role, accelerator)
            assert unresolvable(requirement_lines(REQUIREMENTS), image, catalog.protected, str(REQUIREMENTS)) == []
            assert image.version("torch").split("+")[0] == local_torch, (
                f"{image.key} runs torch {image.version('torch')}, the local runtime {local_torch}: the steps are "
                f"tested on another torch than they run on")


def test_the_local_interpreter_satisfies_the_step_requirements() -> None:
    assert unmet_requirements(REQUIREMENTS.read_text(encoding="utf-8"), str(REQUIREMENTS)) == []


def test_unmet_and_malformed_requirements_are_named() -> None:
    installed = metadata.version("numpy")
    text = f"numpy=={installed}\nnumpy<1  # too old\n\ncontinuum-no-such-package>=1\nwin-only-pkg; sys_platform == 'win32'\n"
    assert unmet_requirements(text, "req.txt") == [f"numpy<1 (installed {installed})",
                                                   "continuum-no-such-package>=1 (not installed)"]
    with pytest.raises(JobFailed, match=r"req.txt needs what this interpreter lacks: numpy<1 .*pip install -c constraints"):
        check_requirements("numpy<1\n", "req.txt")
    with pytest.raises(JobFailed, match=r"req.txt:2: not a requirement"):
        check_requirements("numpy\nnot a requirement at all!\n", "req.txt")
    with pytest.raises(JobFailed, match=r"req.txt:1: pip options \(--index-url\) are not supported locally"):
        check_requirements("--index-url https://example.com\n", "req.txt")


def _archive(tmp_path: Path, requirements: str | None) -> Path:
    path = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        files = {"prepare.py": "print('hi')\n", **({"requirements.txt": requirements} if requirements else {})}
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_source_archives_are_checked_before_the_job_runs(tmp_path: Path) -> None:
    for name in ("none", "ok", "bad"):
        (tmp_path / name).mkdir()
    check_source_archive(_archive(tmp_path / "none", None))
    check_source_archive(_archive(tmp_path / "ok", "numpy>=1\n"))
    with pytest.raises(JobFailed, match=r"sourcedir.tar.gz/requirements.txt needs .*continuum-no-such-package"):
        check_source_archive(_archive(tmp_path / "bad", "continuum-no-such-package\n"))


def test_the_sdk_runproc_install_block_is_replaced_by_the_check(tmp_path: Path) -> None:
    """The SDK's own runproc.sh text: if its install test changes, this fails instead of pip running offline."""
    from sagemaker.processing import FrameworkProcessor

    script = FrameworkProcessor._generate_framework_script(  # type: ignore[attr-defined]
        type("P", (), {"command": ["python"], "_get_codeartifact_command": lambda *_: ""})(), "prepare.py")
    edited = skip_pip_install(script)
    assert "pip install -r requirements.txt" in edited and RUNPROC_SKIP in edited
    assert "if [[ -f 'requirements.txt' ]]" not in edited
    runproc = tmp_path / "runproc.sh"
    runproc.write_text(script, encoding="utf-8")
    remapped = ContainerRoot(tmp_path / "root").remap_script(runproc, skip_pip_install).read_text(encoding="utf-8")
    assert RUNPROC_SKIP in remapped and f"cd {tmp_path / 'root'}/opt/ml/processing/input/code/" in remapped
