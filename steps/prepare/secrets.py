"""Secrets in training text that have no fixed shape of their own, found with detect-secrets' detectors.

Three kinds, on top of the fixed-shape patterns in pii.py:
- `provider_key`: the cloud and service keys detect-secrets' regex detectors know (AWS, Azure storage,
  GitHub, GitLab, Slack, Stripe, Twilio, SendGrid, Mailchimp, npm, PyPI, OpenAI, Telegram, Discord,
  Square, IBM, SoftLayer, Cloudant, basic-auth URLs, JWTs, private keys; not Artifactory, whose
  `AP...` pattern matches capitalised words, nor public IPs, which are no secret);
- `password` / `secret`: a value in a key-like position (`password: ...`, `api_key = ...`, `my password
  is ...`) that does not read as words: it holds a digit or a symbol, and is not a template, a UUID or
  a run like `abcdef`;
- `high_entropy`: a bare token of 32+ base64 characters, mixed case with digits, above detect-secrets'
  entropy limit for base64 strings (4.5 bits): a key such as `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`.
Ordinary prose has none of these; `pii.PREFILTER` lets only texts with a key word or a long token reach
this scan. detect-secrets is loaded on the first suspect text (its import costs a few hundred ms).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

KEYWORDS = (r"passwords?|passwd|passphrase|passcode|pwd|contrase(?:ñ|n)a|secret|client[_ -]?secret|"
            r"(?:api|auth|access|secret|private|service|account|client|db|database)[_ -]?key|"
            r"(?:access|auth|api|bearer|refresh)[_ -]?token|token|credentials?")
PASSWORD_WORDS = re.compile(r"pass|pwd|contrase", re.IGNORECASE)
# keyword [suffix] (":" | "=" | ":=" | "is" | "was") [quote] value
KEY_POSITION = rf"(?i:(?P<key>{KEYWORDS})[\w-]{{0,12}}?[\"'\]]{{0,2}}\s*(?::=|=>|[:=]|\s(?:is|was|are)\b:?))"
_ASSIGNMENT = re.compile(KEY_POSITION + r"[ \t]*[\"'`]?(?P<value>[^\s\"'`]{6,200})")
# What every provider pattern needs somewhere in the text: a long token, a URL with credentials, a PEM
# block, a JWT, a Telegram bot id, or an IBM / Cloudant / SoftLayer key word.
_PROVIDER_GATE = re.compile(r"[A-Za-z0-9+/=_-]{20,}|://[^\s/@]*:[^\s/@]*@|PRIVATE KEY|eyJ|\d{8,10}:|"
                            r"(?i:cloudant|softlayer|ibm|cos[-_]?hmac)")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{32,}(?![A-Za-z0-9+/=_-])")
_WORDLIKE = re.compile(r"[A-Za-z'_-]+")
_TRAILING = ".,;:!?)]}>\"'"
BASE64_ENTROPY_LIMIT = 4.5  # detect-secrets' default for Base64HighEntropyString
VALUE_ENTROPY_LIMIT = 2.5  # a key-like position asks less: "Hunter2-Sup3r-S3cret!" has 3.4
PROVIDER_MODULES = ("aws", "azure_storage_key", "basic_auth", "cloudant", "discord", "github_token",
                    "gitlab_token", "ibm_cloud_iam", "ibm_cos_hmac", "jwt", "mailchimp", "npm", "openai",
                    "private_key", "pypi_token", "sendgrid", "slack", "softlayer", "square_oauth", "stripe",
                    "telegram_token", "twilio")


@functools.lru_cache(maxsize=1)
def _detect_secrets() -> tuple[list[re.Pattern[str]], Any, Any]:
    """(the provider detectors' patterns, the entropy function, the false-positive filters), loaded once."""
    import importlib

    from detect_secrets.filters import heuristic
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    patterns: list[re.Pattern[str]] = []
    for name in PROVIDER_MODULES:
        module = importlib.import_module(f"detect_secrets.plugins.{name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, RegexBasedDetector) and value is not RegexBasedDetector \
                    and value.__module__ == module.__name__:
                patterns += list(value.denylist)
    entropy = Base64HighEntropyString().calculate_shannon_entropy

    def dismissed(value: str) -> bool:
        return (heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value)
                or heuristic.is_templated_secret(value))

    return patterns, entropy, dismissed


def _strip(value: str) -> str:
    return value.rstrip(_TRAILING)


def _looks_secret(value: str) -> bool:
    """A value after a key word that is a credential, not words: a digit or a symbol in it, some entropy."""
    _, entropy, dismissed = _detect_secrets()
    core = _strip(value)
    if len(core) < 6 or _WORDLIKE.fullmatch(core) or dismissed(core):
        return False
    if core.startswith(("http://", "https://", "www.")) or re.fullmatch(r"[\d.,:/ -]+", core) and len(core) < 8:
        return False  # a link, a short number or date
    return entropy(core) >= VALUE_ENTROPY_LIMIT


def find(text: str) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of each secret in `text` this module knows (see the module docstring)."""
    patterns, entropy, dismissed = _detect_secrets()
    if _PROVIDER_GATE.search(text):
        for pattern in patterns:
            for match in pattern.finditer(text):
                start, end = match.span(1) if match.re.groups and match.group(1) else match.span()
                yield "provider_key", start, end
    for match in _ASSIGNMENT.finditer(text):
        value = match.group("value")
        if _looks_secret(value):
            kind = "password" if PASSWORD_WORDS.search(match.group("key")) else "secret"
            yield kind, match.start("value"), match.end("value")
    for match in _LONG_TOKEN.finditer(text):
        token = match.group()
        if (re.search(r"[a-z]", token) and re.search(r"[A-Z]", token) and re.search(r"\d", token)
                and entropy(token) >= BASE64_ENTROPY_LIMIT and not dismissed(token)):
            yield "high_entropy", match.start(), match.end()
