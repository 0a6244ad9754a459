"""What a step's log shows: progress and results, for people.

Library progress bars, info/warning logging and deprecation warnings raised inside libraries are for
developers: they show only with --verbose (or $CONTINUUM_VERBOSE=1). Our own code must not use a
deprecated API, so a deprecation warning attributed to our modules still shows.
"""
from __future__ import annotations

import warnings

# Modules whose own FutureWarning/DeprecationWarning lines a step's log leaves out unless verbose.
LIBRARY_MODULES = r"(transformers|peft|accelerate|torch|bitsandbytes|datasets|huggingface_hub|safetensors|trl)(\.|$)"


def quiet_libraries(verbose: bool) -> None:
    """Silence library noise for this process unless `verbose`."""
    # peft reads every wrapped model's deprecated `is_gradient_checkpointing` property (peft_model.py): not our call.
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if verbose:
        return
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # also huggingface_hub's
    hf_logging.set_verbosity_error()
