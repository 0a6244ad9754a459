"""The local runtime's home folder: local S3, the registry database, endpoint state."""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CONTINUUM_HOME"
DEFAULT_HOME = ".continuum"


def continuum_home() -> Path:
    """``$CONTINUUM_HOME`` (default ``./.continuum``), created if missing, as an absolute path."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home
