"""The training step's code (entry script: steps/train.py); steps/common/ holds what other steps share."""
from train.run import NoTrainingData, load_examples, main

__all__ = ["NoTrainingData", "load_examples", "main"]
