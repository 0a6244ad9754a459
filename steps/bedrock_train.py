"""Bedrock train step: the prepared splits → an Amazon Bedrock model customization job → an invocable custom model.

Writes the train (and validation) split in the JSONL format Bedrock takes for the base model's family
(bedrock_train/formats.py: prompt/completion, or the bedrock-conversation-2024 schema), uploads it under
--data-s3-uri, starts a FINE_TUNING customization job with the training config's hyperparameters (as strings),
waits for Completed (a Failed or Stopped job is an error carrying Bedrock's failure message), then makes the
custom model invocable for the evaluate step: provisioned throughput (no commitment) or an on-demand custom
model deployment, waited for. Writes bedrock.json (job, custom model ARN, the model id to invoke, data format,
hyperparameters, data version). Plain boto3; there is no local stand-in for Bedrock.
"""
from bedrock_train.run import main

if __name__ == "__main__":
    raise SystemExit(main())
