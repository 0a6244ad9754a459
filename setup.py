"""continuum: continuous LLM fine-tuning and deployment on SageMaker Pipelines (and on one machine)."""
from pathlib import Path

from setuptools import find_packages, setup

CONTROL_PLANE = [
    "sagemaker>=2.257.7,<3",
    "boto3>=1.34",
    "pydantic>=2.6",
    "pyyaml>=6",
    "huggingface_hub>=1.0",  # staging an HF base model id once into the bucket (run-pipeline in CodeBuild too)
]


def step_requirements() -> list[str]:
    """steps/requirements.txt without comments: what every step container installs on top of torch."""
    lines = (Path(__file__).parent / "steps" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


# Everything the step containers install (steps/requirements.txt, lm-eval included: the local runtime
# checks that file before each job) on top of the CPU build of torch.
ML_STACK = ["torch==2.13.0", *step_requirements()]
# checkov (the infra/ security scan) is not here: it pins boto3==1.35.49 and packaging<24 (infra/README.md).
TEST = ["pytest>=8", "moto[s3,sagemaker,events,iam,sts,cloudformation]>=5.1", "nbformat>=5", "playwright>=1.45",
        "cfn-lint>=1.20"]
# `continuum ui`: server-rendered pages (htmx ships in pipelines/ui/static), charts as SVG from matplotlib.
UI = ["starlette>=0.37", "jinja2>=3.1", "uvicorn>=0.29", "python-multipart>=0.0.9", "matplotlib>=3.8"]
# MLflow experiment tracking (tracking.mlflow_uri; pipelines/tracking.py imports it lazily); sagemaker-mlflow lets
# the client take a SageMaker MLflow tracking server ARN as its URI.
TRACKING = ["mlflow>=3,<4", "sagemaker-mlflow>=0.1"]
# QLoRA (train.py --quantization 4bit, CUDA only); constraints.txt keeps the CPU build of torch pinned.
GPU = ["bitsandbytes>=0.45"]

setup(
    name="continuum",
    version="0.1.0",
    description=__doc__,
    long_description=Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pipelines", "pipelines.*"]),
    package_data={"pipelines": ["configs/*.yaml", "prices.yaml", "ui/templates/*.html", "ui/static/*"]},
    install_requires=CONTROL_PLANE,
    extras_require={"ml": ML_STACK, "gpu": GPU, "test": TEST, "ui": UI, "tracking": TRACKING,
                    "all": ML_STACK + TEST + UI + TRACKING},
    entry_points={
        "console_scripts": [
            "continuum=pipelines.cli:main",
            "run-pipeline=pipelines.aws_compat:run_pipeline_main",
            "get-pipeline-definition=pipelines.aws_compat:get_pipeline_definition_main",
        ]
    },
)
