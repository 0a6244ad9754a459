"""The smoke test step's code (entry script: steps/smoke_test.py)."""
from smoke_test.run import SmokeTestError, benchmark_gate, main, parse_args, smoke_test, suites_from_args

__all__ = ["SmokeTestError", "benchmark_gate", "main", "parse_args", "smoke_test", "suites_from_args"]
