"""Monitoring step: drift and quality of an endpoint's captured traffic against the training data.

``baseline``: the training data (the prepare step's train split) → ``statistics.json`` and
``constraints.json`` in Model Monitor's formats, plus ``reference.jsonl`` and ``vocabulary.txt``.
``check``: the endpoint's data capture (``{DestinationS3Uri}/{endpoint}``, JSON / CSV / BASE64
records, outputs optional) over the last ``--since-hours`` → ``statistics.json``,
``constraint_violations.json`` and ``report.json`` (verdict: ok / drift / degraded /
insufficient_data); with CloudWatch: error rate and latency of the endpoint in, the results out as
metrics, and an alarm on violations. Violations are a result, not a failure: exit 0 unless
``--fail-on-violation``. Plain boto3: locally the runtime points ``AWS_ENDPOINT_URL_CLOUDWATCH`` at its
stand-in.
"""
from monitor import main

if __name__ == "__main__":
    raise SystemExit(main())
