"""The prepare step's code (entry script: steps/prepare.py); steps/common/ holds what other steps share."""
from prepare.run import PrepareError, main, parse_args, prepare

__all__ = ["PrepareError", "main", "parse_args", "prepare"]
