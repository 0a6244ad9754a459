"""Smoke test step: invoke an endpoint with each prompt, then score the benchmark suites against it.

Sends the Hugging Face inference toolkit's JSON (``{"inputs": prompt, "parameters": {...}}``) through
``sagemaker-runtime`` InvokeEndpoint, checks the status and a non-blank ``generated_text``. With
``--benchmarks-dir`` it also runs the benchmark suites (``benchmarks/<suite>/``) through the live
endpoint in batches and scores them with the same metrics as the evaluate step (``<suite>_<metric>``);
``--gate-metric``/``--gate-threshold`` make one of them a gate. Writes ``smoke.json`` (per-prompt
response, status, latency, invoked variant; ``benchmarks``; overall ``passed``) and exits 1 when a
prompt, a benchmark call or the gate fails. Plain boto3: locally the runtime points
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` at its stand-in.
"""
from smoke_test import main

if __name__ == "__main__":
    raise SystemExit(main())
