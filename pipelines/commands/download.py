"""`continuum download [VERSION]`: where to get a model version's artifact (presigned URL on AWS, a path locally)."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_download(args: argparse.Namespace) -> int:
    from pipelines.deploy.artifacts import artifact_location
    from pipelines.registry_ops import find_version

    config = load_config(args.config)
    backend = backend_for(args, config)
    version = find_version(backend.client("sagemaker"), config.model.model_package_group, args.version)
    print(artifact_location(backend, version.model_data_url, args.expires_in))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("download", cmd_download,
                         "model version artifact: a presigned URL (--aws) or the local file path")
    parser.add_argument("version", nargs="?", type=int, help="version number (default: the newest)")
    parser.add_argument("--expires-in", type=int, default=3600, help="seconds the presigned URL stays valid")
    add_target(parser)
