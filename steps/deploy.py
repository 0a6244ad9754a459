"""Deploy step: a registered model package → a SageMaker real-time endpoint with data capture, InService.

Describes the package, creates a model from its InferenceSpecification (image, ModelDataUrl,
Environment) and an endpoint config (one ``AllTraffic`` variant, DataCaptureConfig capturing Input and
Output with JSON bodies recorded as JSON, optionally KMS-encrypted), then creates the endpoint, or
updates it when it exists (optionally blue/green with canary or linear traffic shifting, baking and
auto-rollback on CloudWatch alarms, among them alarms created here for the new fleet: 5XX error rate
and model latency), waits for InService and (re)attaches a target-tracking auto-scaling policy.
Model and config names are unique per deploy (``<endpoint>-v<version>-<utc time>``). Writes
``deployment.json``. Plain boto3: locally the runtime points ``AWS_ENDPOINT_URL_SAGEMAKER`` (and the
CloudWatch / Application Auto Scaling URLs) at its stand-ins.
"""
from deploy import main

if __name__ == "__main__":
    raise SystemExit(main())
