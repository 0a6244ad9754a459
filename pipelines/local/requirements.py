"""A job's requirements.txt against the local runtime's interpreter, which plays the container image.

On SageMaker the containers pip-install the source dir's requirements.txt before each job. The
embedded runtime has no network and its interpreter already is the image, so it checks the file
(installed versions against each specifier, markers honoured) and fails the job with what is
missing instead of letting pip reach for an index.
"""
from __future__ import annotations

import tarfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from pipelines.local.container import JobFailed

REQUIREMENTS_FILE = "requirements.txt"
RUNPROC_INSTALL_TEST = "if [[ -f 'requirements.txt' ]]; then"
RUNPROC_SKIP = "if false; then  # local runtime: requirements.txt was checked against this interpreter"
INSTALL_HINT = 'pip install -c constraints.txt -e ".[all]"'


def unmet_requirements(text: str, origin: str) -> list[str]:
    """One line per requirement this interpreter does not satisfy; ValueError names a malformed line."""
    unmet = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ValueError(f"{origin}:{line_no}: pip options ({line.split()[0]}) are not supported locally")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"{origin}:{line_no}: not a requirement: {exc}") from exc
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (installed {installed})")
    return unmet


def check_requirements(text: str, origin: str) -> None:
    """Raise JobFailed listing what `origin` needs and this interpreter lacks (or naming its malformed line)."""
    try:
        unmet = unmet_requirements(text, origin)
    except ValueError as exc:
        raise JobFailed(str(exc)) from exc
    if unmet:
        raise JobFailed(f"{origin} needs what this interpreter lacks: {'; '.join(unmet)} "
                           f"(install the project's ML stack: {INSTALL_HINT})")


def check_requirements_file(path: Path) -> None:
    """check_requirements on a file, if it exists."""
    if path.is_file():
        check_requirements(path.read_text(encoding="utf-8"), str(path))


def check_source_archive(archive: Path) -> None:
    """check_requirements on the requirements.txt at the root of a sourcedir.tar.gz, if it has one."""
    with tarfile.open(archive) as tar:
        try:
            member = tar.extractfile(REQUIREMENTS_FILE)
        except KeyError:
            return
        if member is not None:
            check_requirements(member.read().decode("utf-8"), f"{archive.name}/{REQUIREMENTS_FILE}")


def skip_pip_install(script: str) -> str:
    """The SDK's runproc.sh without its `pip install -r requirements.txt` block (checked instead)."""
    return script.replace(RUNPROC_INSTALL_TEST, RUNPROC_SKIP)
