"""The resolve step's code (entry script: steps/resolve.py)."""
from resolve.run import NO_PACKAGE, ResolveError, latest_approved_package, main, model_data_url, parse_args, resolve

__all__ = ["NO_PACKAGE", "ResolveError", "latest_approved_package", "main", "model_data_url", "parse_args", "resolve"]
