"""The monitoring step's code (entry script: steps/monitor.py); steps/common/ holds what other steps share."""
from monitor.run import MonitorError, main, parse_args, read_traffic, run_check

__all__ = ["MonitorError", "main", "parse_args", "read_traffic", "run_check"]
