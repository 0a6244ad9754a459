"""SageMaker training step: LoRA/QLoRA fine-tune of the previous version on prompt/completion JSONL.

Channels (SM_CHANNEL_*): `train`, `validation`, `base_model` (the previous approved version: a model
directory or its model.tar.gz; else `--base_model`, an HF id or path), optional `report` (the
prepare step's report.json, for the data version). Writes SM_MODEL_DIR: merged model + tokenizer,
`adapter/`, `continuum.json` (strategy, hyperparameters, metrics, cost), `continual/fisher.safetensors`,
`adapters/` (modular history), `code/inference.py`.

Loss on completion tokens only (prompt labelled -100; EOS ends each completion), weighted for
replayed examples; EWC / L2-SP / modular penalties per --strategy. Examples are packed into one
row per step without attending to each other. bf16 on GPUs, QLoRA with --quantization 4bit (CUDA),
data parallel under torchrun. Checkpoints in /opt/ml/checkpoints; SIGTERM checkpoints and exits
143, and a restarted job resumes from the last checkpoint.

    python train.py --train-dir data/train --model-dir out --base_model path/to/model --epochs 3
"""
from train import main

if __name__ == "__main__":
    raise SystemExit(main(description=__doc__))
