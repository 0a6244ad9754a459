"""The bedrock_train step's code (entry script: steps/bedrock_train.py); steps/common/ holds what other steps share."""
