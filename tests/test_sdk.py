"""pipelines/sdk.py: the SDK major version the definitions are built with, checked before the SDK is used."""
from __future__ import annotations

from importlib import metadata

import pytest

from pipelines.sdk import SDK_MAJOR, SdkVersionError, require_sdk_major


def test_the_installed_sdk_is_the_one_the_definitions_are_built_with() -> None:
    assert metadata.version("sagemaker").split(".")[0] == str(SDK_MAJOR)
    require_sdk_major()


def test_another_major_version_is_refused_with_the_fix() -> None:
    with pytest.raises(SdkVersionError, match=r"sagemaker 3\.27\.0 is installed; .*SDK v2 \(docs/sdk.md\): "
                                              r"pip install -c constraints.txt 'sagemaker>=2.257.7,<3'"):
        require_sdk_major("3.27.0")
    require_sdk_major("2.257.7")
