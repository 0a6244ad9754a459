"""Resolve the model to start from: the latest Approved package of a Model Registry group.

Writes ``resolved.json`` (``model_package_arn``, ``version``, ``model_data_url``,
``replay_data_uri``, ``inventory_uri``, ``source``): the newest Approved version of
``--model-package-group`` (ListModelPackages sorted by CreationTime, descending) with its
``train_data_uri`` lineage as the replay data and its ``inventory_uri`` (its knowledge inventory:
what it was trained on and knows, re-asked by the next evaluation; the empty replay prefix for
versions registered without one), else ``--fallback-model-uri`` / ``--fallback-replay-uri`` when
the group has no Approved version or does not exist. ``--require-approved`` turns "no Approved version" into an
error. Plain boto3: on AWS it reaches SageMaker, locally the runtime points
``AWS_ENDPOINT_URL_SAGEMAKER`` at its stand-in.
"""
from resolve import main

if __name__ == "__main__":
    raise SystemExit(main())
