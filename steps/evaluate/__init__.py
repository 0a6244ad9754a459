"""The evaluate step's code (entry script: steps/evaluate.py); steps/common/ holds what other steps share."""
from evaluate.run import EvaluationError, EvaluationSettings, main, parse_args, read_validation_examples

__all__ = ["EvaluationError", "EvaluationSettings", "main", "parse_args", "read_validation_examples"]
