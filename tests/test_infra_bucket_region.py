"""`ensure_bucket` creates the project bucket in the configured region (S3 defaults to us-east-1 otherwise)."""
from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from pipelines.backend import Backend
from pipelines.staging import ensure_bucket


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_ensure_bucket_creates_the_bucket_in_the_backends_region(region: str) -> None:
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
        ensure_bucket(Backend("aws", session), "continuum-region-check")
        location = session.client("s3").get_bucket_location(Bucket="continuum-region-check")["LocationConstraint"]
        assert (location or "us-east-1") == region
        ensure_bucket(Backend("aws", session), "continuum-region-check")  # an existing bucket is left alone
