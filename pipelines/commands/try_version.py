"""`continuum try VERSION PROMPT...`: answer from any registered version (pending, rejected, approved) without deploying it.

The version is looked up in the Model Registry (the local stand-in, or SageMaker with --aws), its
artifact is fetched and unpacked once into the local home's cache, and each prompt is answered by
the artifact's own serving handler (`code/inference.py`, as an endpoint runs it), on this machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from pipelines.cli_support import add_target, backend_for, local_home
from pipelines.config import load_config


def cmd_try(args: argparse.Namespace) -> int:
    from pipelines.model_artifacts import ArtifactError, answer, cache_root, materialize, resolve_version

    if args.max_new_tokens < 1:
        print("try: --max-new-tokens must be at least 1", file=sys.stderr)
        return 1
    config = load_config(args.config)
    backend = backend_for(args, config)
    started = time.perf_counter()
    try:
        version = resolve_version(backend, config.model.model_package_group, args.version)
        model_dir, cached = materialize(backend, version.model_data_url, cache_root(local_home(args)))
        answers = answer(model_dir, list(args.prompt), args.max_new_tokens)
    except (LookupError, FileNotFoundError, ValueError, ArtifactError) as exc:
        print(f"try: {exc}", file=sys.stderr)
        return 1
    data = version.metadata.get("data_version", "")
    print(f"version {version.version} ({version.approval_status}{', data ' + data if data else ''}; not deployed) "
          f"answered in {time.perf_counter() - started:.1f} s from {model_dir}{' (cached)' if cached else ''}",
          file=sys.stderr)
    for prompt, text in zip(args.prompt, answers):
        if len(args.prompt) > 1:
            print(f"> {prompt}")
        print(text.strip())
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("try", cmd_try,
                         "answer prompts from any registered version (pending, rejected, approved) without deploying it")
    parser.add_argument("version", help="version number (3 or v3) or 'latest'")
    parser.add_argument("prompt", nargs="+", help="one or more prompts; each is answered")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    add_target(parser)
