"""Print an image's Python packages (`name==version`, one a line) from the uv.lock it was built from.

AWS's PyTorch DLCs (docker/pytorch/<version>/{cpu,cuda}/uv.lock in aws/deep-learning-containers) pin
every package of the image's venv in a uv lock file; this reduces one to the packages a Linux x86_64
container gets, the form `containers/images.yaml` records:

    python containers/images/lock_packages.py uv.lock > containers/images/pytorch-2.13-cpu-sagemaker.txt
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

# The container's platform, for the lock's per-platform resolution markers.
LINUX_X86_64 = {"sys_platform": "linux", "platform_machine": "x86_64"}


def _linux_x86_64(markers: list[str]) -> bool:
    """Whether any of uv's resolution markers (only sys_platform / platform_machine clauses) holds in the container."""
    from packaging.markers import Marker

    return any(Marker(marker).evaluate({**LINUX_X86_64}) for marker in markers)


def lock_packages(lock_path: Path) -> dict[str, str]:
    """name -> version of every package the lock installs on Linux x86_64."""
    lock = tomllib.loads(Path(lock_path).read_text(encoding="utf-8"))
    packages: dict[str, str] = {}
    for package in lock.get("package", []):
        markers = package.get("resolution-markers")
        if markers and not _linux_x86_64(markers):
            continue
        if package.get("source", {}).get("virtual") or package.get("source", {}).get("editable"):
            continue  # the project itself (installed with --no-install-project)
        name, version = package["name"], package["version"]
        if name in packages and packages[name] != version:
            raise ValueError(f"{lock_path}: {name} has two versions on Linux x86_64: {packages[name]}, {version}")
        packages[name] = version
    return packages


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lock_packages.py UV_LOCK")
    for name, version in sorted(lock_packages(Path(sys.argv[1])).items()):
        print(f"{name}=={version}")
