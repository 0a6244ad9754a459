"""The deploy step's code (entry script: steps/deploy.py); steps/common/ holds what other steps share."""
from deploy.run import (DeployError, DeploySettings, deploy, main, parse_args, resource_name, settings_from_args,
                        wait_for_endpoint)

__all__ = ["DeployError", "DeploySettings", "deploy", "main", "parse_args", "resource_name", "settings_from_args",
           "wait_for_endpoint"]
