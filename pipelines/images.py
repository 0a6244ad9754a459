"""The images every step runs in on AWS, from their one record: `containers/images.yaml`.

The pipeline builders ask `image_uri(config_override, role, instance_type, region)` for a step's
image; the tests resolve each step's requirements against the recorded packages
(`unresolvable`) and load trained artifacts with the serving image's versions. An instance type
given as a pipeline parameter picks the image by its default value: the image is fixed when the
definition is built, so a run that overrides the parameter with another accelerator keeps it.

`python -m pipelines.images serving-test-requirements` prints the pins of the serving test
environment (containers/serving/make_test_env.sh).
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml

from pipelines.paths import REPO_ROOT

IMAGES_FILE = REPO_ROOT / "containers" / "images.yaml"
Role = Literal["processing", "training", "serving"]
Accelerator = Literal["cpu", "gpu"]
ROLES: tuple[Role, ...] = ("processing", "training", "serving")
# Instance families with NVIDIA GPUs (ml.g4dn, ml.g5, ml.g6, ml.p4d, ml.p5, ...).
GPU_FAMILY_PREFIXES = ("ml.g", "ml.p")
# The serving test environment runs the serving image's transformers on this machine's CPU build of
# torch (the image's CUDA build cannot be installed here): the pin in constraints.txt.
CONSTRAINTS_FILE = REPO_ROOT / "constraints.txt"


class ImageRecordError(ValueError):
    """containers/images.yaml is malformed; the message names the file and the field."""


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return name.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class Image:
    """One recorded image: where it is, what accelerator it is built for, and its Python packages."""

    key: str
    repository: str
    tag: str
    accelerator: Accelerator
    python: str
    packages: dict[str, str]
    source: str

    def uri(self, region: str, account: str, template: str) -> str:
        return template.format(account=account, region=region, repository=self.repository, tag=self.tag)

    def version(self, name: str) -> str | None:
        """The recorded version of a distribution (`torch` → `2.13.0+cpu`), None if the image lacks it."""
        return self.packages.get(canonical(name))


@dataclass(frozen=True)
class ImageCatalog:
    account: str
    template: str
    images: dict[str, Image]
    steps: dict[Role, dict[Accelerator, str]]
    protected: tuple[str, ...]

    def for_step(self, role: Role, accelerator: Accelerator) -> Image:
        return self.images[self.steps[role][accelerator]]

    def uri(self, image: Image, region: str) -> str:
        return image.uri(region, self.account, self.template)


def _field(mapping: Any, key: str, where: str, kind: type = str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ImageRecordError(f"{where}: missing field {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ImageRecordError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _read_packages(path: Path, where: str) -> dict[str, str]:
    """`name==version` lines (comments and blanks skipped) from an image's package list."""
    packages: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ImageRecordError(f"{where}: cannot read {path}: {exc}") from exc
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ImageRecordError(f"{path}:{number}: expected name==version, got {raw!r}")
        packages[canonical(name.strip())] = version.strip()
    return packages


def _image(key: str, entry: Any, base: Path, where: str) -> Image:
    accelerator = _field(entry, "accelerator", where)
    if accelerator not in ("cpu", "gpu"):
        raise ImageRecordError(f"{where}.accelerator: expected cpu or gpu, got {accelerator!r}")
    if "packages_file" in entry:
        packages = _read_packages(base / _field(entry, "packages_file", where), f"{where}.packages_file")
    else:
        packages = {canonical(name): str(version) for name, version in _field(entry, "packages", where, dict).items()}
    if "torch" not in packages:
        raise ImageRecordError(f"{where}: the record names no torch version (packages or packages_file)")
    return Image(key=key, repository=_field(entry, "repository", where), tag=str(_field(entry, "tag", where)),
                 accelerator=accelerator, python=_field(entry, "python", where), packages=packages,
                 source=_field(entry, "source", where))


@functools.lru_cache(maxsize=1)
def load_catalog() -> ImageCatalog:
    """The repository's record (containers/images.yaml), read once."""
    return read_catalog(IMAGES_FILE)


def read_catalog(path: Path) -> ImageCatalog:
    """A record, checked: every image complete, every role mapped to a recorded image for cpu and gpu."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ImageRecordError(f"{path}: {exc}") from exc
    where = str(path)
    images = {key: _image(key, entry, path.parent, f"{where}: images.{key}")
              for key, entry in _field(data, "images", where, dict).items()}
    steps: dict[Role, dict[Accelerator, str]] = {}
    mapping = _field(data, "steps", where, dict)
    for role in ROLES:
        per_accelerator = _field(mapping, role, f"{where}: steps", dict)
        for accelerator in ("cpu", "gpu"):
            key = _field(per_accelerator, accelerator, f"{where}: steps.{role}")
            if key not in images:
                raise ImageRecordError(f"{where}: steps.{role}.{accelerator}: no image {key!r} under images")
            if images[key].accelerator != accelerator:
                raise ImageRecordError(f"{where}: steps.{role}.{accelerator}: {key} is a {images[key].accelerator} image")
        steps[role] = dict(per_accelerator)
    return ImageCatalog(account=str(_field(data, "account", where)), template=_field(data, "uri", where),
                        images=images, steps=steps, protected=tuple(_field(data, "protected", where, list)))


def default_of(instance_type: Any) -> str:
    """An instance type as a string: a pipeline parameter's default value, else the value itself."""
    value = getattr(instance_type, "default_value", instance_type)
    if not isinstance(value, str):
        raise ValueError(f"an instance type must be a string or a parameter with a default, got {instance_type!r}")
    return value


def accelerator_of(instance_type: Any) -> Accelerator:
    """gpu for the NVIDIA instance families (ml.g*, ml.p*), else cpu."""
    return "gpu" if default_of(instance_type).startswith(GPU_FAMILY_PREFIXES) else "cpu"


def step_image(role: Role, instance_type: Any) -> Image:
    """The recorded image a step of `role` runs in on `instance_type`."""
    return load_catalog().for_step(role, accelerator_of(instance_type))


def image_uri(override: str | None, role: Role, instance_type: Any, region: str) -> str:
    """The configured image (`override`, e.g. one built from containers/) or the recorded one for the step."""
    if override:
        return override
    catalog = load_catalog()
    return catalog.uri(catalog.for_step(role, accelerator_of(instance_type)), region)


def python_tag(image: Image) -> str:
    """`py312` for Python 3.12 (the SDK's py_version spelling)."""
    return "py" + image.python.replace(".", "")


def _environment(image: Image) -> dict[str, str]:
    """Marker environment of the image's interpreter (Linux x86_64)."""
    return {"python_version": image.python, "python_full_version": f"{image.python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def unresolvable(requirements: list[str], image: Image, protected: tuple[str, ...], origin: str) -> list[str]:
    """What keeps `requirements` (pip lines) from installing on top of `image` without replacing a protected
    package (its torch): one message per conflict, [] when it resolves.

    pip keeps an image's package whose version satisfies a requirement; otherwise it installs another.
    A package the image lacks (or has in a version that does not fit) is resolved to the version installed
    here, and its own requirements are followed the same way, with markers evaluated for the image's Python.
    """
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    environment = _environment(image)
    keep = {canonical(name) for name in protected}
    problems: list[str] = []
    resolved: dict[str, str] = {}  # distribution -> the version resolved here (not the image's)
    queue: list[tuple[str, str]] = [(line, origin) for line in requirements]
    while queue:
        line, via = queue.pop(0)
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonical(requirement.name)
        recorded = image.version(name)
        if recorded is not None and requirement.specifier.contains(Version(recorded).public, prereleases=True):
            continue  # the image's own copy stays
        if recorded is not None and name in keep:
            problems.append(f"{via} needs {requirement} but {image.key} has {name} {recorded}: pip would replace the "
                            f"image's {name}")
            continue
        if name in resolved:
            if not requirement.specifier.contains(resolved[name], prereleases=True):
                problems.append(f"{via} needs {requirement}; the version resolved here is {resolved[name]}")
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{via} needs {requirement}: not installed here, so its own requirements cannot be "
                            f"checked against {image.key}")
            continue
        version = resolved[name] = distribution.version
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{via} needs {requirement}; the version resolved here is {version}")
            continue
        requires_python = distribution.metadata.get("Requires-Python")
        if requires_python and not SpecifierSet(requires_python).contains(f"{image.python}.0"):
            problems.append(f"{name} {version} (for {via}) requires Python {requires_python}; {image.key} has "
                            f"{image.python}")
        queue.extend((dependency, f"{via} -> {name} {version}") for dependency in distribution.requires or [])
    return problems


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file (comments and blank lines dropped)."""
    lines = (raw.split("#")[0].strip() for raw in Path(path).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def serving_test_requirements() -> list[str]:
    """Pins of the serving test environment: the serving image's versions of what the handler imports, on the
    local CPU build of torch."""
    catalog = load_catalog()
    versions = {catalog.for_step("serving", accelerator).version("transformers") for accelerator in ("cpu", "gpu")}
    if len(versions) != 1 or None in versions:
        raise ImageRecordError(f"{IMAGES_FILE}: the cpu and gpu serving images must record one transformers version, "
                               f"got {sorted(map(str, versions))}")
    return [local_torch_pin(), f"transformers=={versions.pop()}"]


def local_torch_pin(path: Path = CONSTRAINTS_FILE) -> str:
    """constraints.txt's torch line (`torch==2.13.0`): the CPU build every local environment uses."""
    for line in requirement_lines(path):
        if canonical(line.split("=")[0].split("<")[0].split(">")[0].strip()) == "torch":
            return line
    raise ImageRecordError(f"{path}: no torch pin (the local CPU build of torch, e.g. torch==2.13.0)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["serving-test-requirements"]:
        print("usage: python -m pipelines.images serving-test-requirements", file=sys.stderr)
        return 2
    print("\n".join(serving_test_requirements()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
