"""The model artifact (SM_MODEL_DIR → model.tar.gz, loadable by the HF/LMI inference containers).

Root: the merged model (config.json, model.safetensors) + tokenizer + continuum.json +
code/inference.py with the prompt rendering it imports (code/prompting.py) and what it needs from the serving
image (code/requirements.txt); `adapter/` this version's PEFT adapter; `adapters/<generation>/` the adapter
history (modular); `continual/fisher.safetensors` this version's Fisher information (EWC).
Only the merged weights are `*.safetensors` at the root, so servers that glob the root load them alone.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from common import prompting
from common.model_io import METADATA_FILE
from train.history import ADAPTER_DIR
from train.model import load_unquantized

SERVING_REQUIREMENTS = "requirements.txt"  # beside serving/inference.py; code/requirements.txt in the artifact


def save_adapter(peft_model: Any, model_dir: Path) -> Path:
    """The PEFT adapter (adapter_config.json + adapter_model.safetensors) in `adapter/`."""
    target = Path(model_dir) / ADAPTER_DIR
    peft_model.save_pretrained(target, safe_serialization=True)
    return target


def save_merged(peft_model: Any, model_dir: Path, quantized: bool, source: str, dtype: str) -> None:
    """Merge the adapter into the weights and save them at the root. With a 4-bit (QLoRA) base, the
    saved adapter is merged into the base reloaded in `dtype` on the CPU (merging into quantized
    weights would lose precision, and the GPU still holds the 4-bit model)."""
    if quantized:
        from peft import PeftModel

        base = load_unquantized(source, dtype, "cpu")
        merged = PeftModel.from_pretrained(base, Path(model_dir) / ADAPTER_DIR).merge_and_unload()
    else:
        merged = peft_model.merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(model_dir, safe_serialization=True)


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    (Path(model_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def inference_handler_source() -> Path | None:
    """The serving handler: packaged beside train.py as `serving/` (the estimator's dependency),
    or in a repository checkout under `containers/serving/`."""
    steps_dir = Path(__file__).resolve().parent.parent
    for candidate in (steps_dir / "serving" / "inference.py", steps_dir.parent / "containers" / "serving" / "inference.py"):
        if candidate.is_file():
            return candidate
    return None


def ship_inference_handler(model_dir: Path) -> None:
    """Put the handler in the artifact as `code/inference.py`, with `code/prompting.py` (this step's own
    rendering, which the handler imports from beside itself) and `code/requirements.txt` (what the handler
    needs from the serving image; the HF inference toolkit pip-installs it at start): AWS's HF inference
    containers run it, so the endpoint renders prompts and chats exactly as training did and as the local
    endpoint does."""
    source = inference_handler_source()
    if source is None:
        print("warning: no serving handler found (serving/inference.py); the artifact has no code/inference.py",
              file=sys.stderr, flush=True)
        return
    code_dir = Path(model_dir) / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, code_dir / "inference.py")
    shutil.copyfile(Path(prompting.__file__), code_dir / "prompting.py")
    requirements = source.with_name(SERVING_REQUIREMENTS)
    if requirements.is_file():
        shutil.copyfile(requirements, code_dir / SERVING_REQUIREMENTS)
