"""A model served by Amazon Bedrock, asked through bedrock-runtime Converse: the evaluate step's generation backend
for `--candidate-model-id` / `--baseline-model-id` (training.backend bedrock).

Only answers can be had from it, not log-likelihoods: generation suites (qa, generation) and the inventory checks
run; a suite that scores options or perplexity, lm-eval tasks and the validation loss cannot (`check_suites`).
Greedy as the local path: temperature 0. Chats go as Converse messages (the model's own template applies);
requests run a few at a time with botocore's adaptive retries for throttling.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common.benchmarks import BenchmarkSuite
from common.cases import BenchmarkCase

GENERATIVE_TASKS = ("qa", "generation")
Chat = list[dict[str, str]]


@dataclass
class RemoteModel:
    """A Bedrock model id and the bedrock-runtime client that asks it."""

    model_id: str
    client: Any
    role: str
    workers: int = 4

    @property
    def metadata(self) -> dict[str, Any]:
        return {"bedrock_model_id": self.model_id}

    @property
    def path(self) -> Path:
        return Path(self.model_id)

    def lineage(self) -> dict[str, Any]:
        """What evaluation.json's lineage records for this model."""
        return {"path": self.model_id, "bedrock_model_id": self.model_id}

    def generate(self, chats: Sequence[Chat], max_new_tokens: int) -> list[str]:
        """The greedy answer to each chat (ending with the user turn), in order."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda chat: self._answer(chat, max_new_tokens), chats))

    def _answer(self, chat: Chat, max_new_tokens: int) -> str:
        response = self.client.converse(**converse_request(self.model_id, chat, max_new_tokens))
        content = response.get("output", {}).get("message", {}).get("content", [])
        return "".join(block.get("text", "") for block in content).strip()


def converse_request(model_id: str, chat: Chat, max_new_tokens: int) -> dict[str, Any]:
    """Converse's parameters for a chat: system messages joined into `system`, the rest as text messages."""
    system = "\n".join(m["content"] for m in chat if m["role"] == "system")
    request: dict[str, Any] = {
        "modelId": model_id,
        "messages": [{"role": m["role"], "content": [{"text": m["content"]}]} for m in chat if m["role"] != "system"],
        "inferenceConfig": {"maxTokens": max_new_tokens, "temperature": 0.0},
    }
    if system:
        request["system"] = [{"text": system}]
    return request


def open_remote(model_id: str, role: str) -> RemoteModel:
    """A RemoteModel on a bedrock-runtime client with adaptive retries (throttling is expected)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("bedrock-runtime", config=Config(retries={"mode": "adaptive", "max_attempts": 10}))
    return RemoteModel(model_id, client, role)


def chat_for(suite: BenchmarkSuite, case: BenchmarkCase) -> Chat:
    """What the remote model is asked for a case: its chat, then the suite's prompt as the user turn."""
    return [*case.context, {"role": "user", "content": suite.render_prompt(case)}]


def check_suites(suites: Sequence[BenchmarkSuite], lm_eval: Sequence[Any], validation: bool, role: str) -> None:
    """Refuse what a remote model cannot be scored on (it gives answers, not likelihoods)."""
    refused = [f"{s.name} ({s.spec.task})" for s in suites if s.spec.task not in GENERATIVE_TASKS]
    refused += [f"{task.name} (lm_eval)" for task in lm_eval]
    if refused:
        raise ValueError(f"{role} is a Bedrock model, which only generates answers: suites {', '.join(refused)} need "
                         f"log-likelihoods; keep {'/'.join(GENERATIVE_TASKS)} suites in evaluation.suites")
    if validation:
        raise ValueError(f"{role} is a Bedrock model: no validation loss (pass --validation-dir '')")


def sized(suite: BenchmarkSuite, max_new_tokens: int) -> BenchmarkSuite:
    """An inventory check's suite with room for the longest answer a check allows (no tokenizer to size it by)."""
    return replace(suite, spec=suite.spec.model_copy(update={"max_new_tokens": max_new_tokens}))
