"""`continuum models {list,approve,reject}`: the model package group's versions and their approval."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_models(args: argparse.Namespace) -> int:
    from pipelines.registry_ops import find_version, list_versions, set_approval

    config = load_config(args.config)
    sagemaker = backend_for(args, config).client("sagemaker")
    group = config.model.model_package_group
    if args.action == "list":
        rows = [version.row() for version in list_versions(sagemaker, group)]
        if not rows:
            print(f"no model versions in {group}")
        for row in rows:
            print(f"v{row['version']:<4} {row['status']:<22} {row['created']:<26} data {row['data_version']}  {row['arn']}")
        return 0
    version = find_version(sagemaker, group, args.version)
    status = "Approved" if args.action == "approve" else "Rejected"
    set_approval(sagemaker, version.arn, status, args.reason or f"{status.lower()} with continuum models {args.action}")
    print(f"version {version.version}: {status}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    models = add_command("models", cmd_models, "list, approve or reject model versions")
    models.add_argument("action", choices=["list", "approve", "reject"])
    models.add_argument("version", nargs="?", type=int, help="version number (default: the newest)")
    models.add_argument("--reason", default="")
    add_target(models)
