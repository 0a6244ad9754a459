"""PII and secrets in training text: find, then redact (`[EMAIL]`, ...) or block the row.

Kinds: email, phone, card (13-19 digits passing the Luhn check), aws_access_key, aws_secret_key,
bearer_token, private_key (PEM blocks), github_token, slack_token, api_key (sk-/rk- style keys,
Google API keys) and jwt; and from secrets.py (detect-secrets' detectors): provider_key (the cloud and
service keys it knows), password and secret (a credential-like value after a key word) and
high_entropy (a bare 32+ character key). A cheap prefilter (Arrow's RE2 over a whole batch when pyarrow
is there) picks the texts worth the exact scan, so clean text costs about a microsecond.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from prepare import secrets
from prepare.contract import PII_MODES as MODES

_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)"),
    ("aws_secret_key", r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ("bearer_token", r"\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{16,}=*"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("api_key", r"\b(?:(?:sk|rk)[-_](?:live_|test_|proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35})"),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ("card", r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
    ("phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
              r"|(?:1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4})(?![\w])"),
)
_SCANNER = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _PATTERNS), re.DOTALL)
# A superset of every pattern above in RE2 syntax (no look-arounds): texts without a hit are clean.
PREFILTER = (r"@|\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}|\d{4}[ -]?\d{4}[ -]?\d{4}|\+\d|AKIA|ASIA|ABIA|ACCA|[Bb]earer\s|"
             r"PRIVATE KEY|gh[pousr]_|github_pat_|xox[abprs]-|sk[-_]|rk[-_]|AIza|eyJ|(?i:aws_?secret)|"
             r"(?i:(?:pass|pwd|secret|token|key|credential|contrase)[\w-]{0,12}[\"'\]]{0,2}\s*(?::|=|\s(?:is|was|are)\b))|"
             r"[A-Za-z0-9+/=_-]{20,}|://[^\s/@]*:[^\s/@]*@|\d{8,10}:|(?i:cloudant|softlayer|ibm|cos[-_]?hmac)")
_PREFILTER = re.compile(PREFILTER)
_NON_DIGITS = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum card numbers carry."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def may_contain(texts: Sequence[str]) -> list[bool]:
    """Which texts the exact scan must look at (RE2 over the batch with pyarrow, else Python's re).

    The Arrow array is built from the joined UTF-8 bytes and their offsets: `pyarrow.array` of a list
    would import pandas (~40 MB per process) to check the list is not a pandas object.
    """
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return [_PREFILTER.search(text) is not None for text in texts]
    joined = "".join(texts)
    data = joined.encode("utf-8")
    if len(data) == len(joined):  # ASCII: as many bytes as characters
        sizes = np.fromiter(map(len, texts), np.int64, len(texts))
    else:
        sizes = np.fromiter((len(text.encode("utf-8")) for text in texts), np.int64, len(texts))
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    array = pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(data))
    return pc.match_substring_regex(array, PREFILTER).to_pylist()


def allowed(kind: str, value: str, allow: frozenset[str]) -> bool:
    """Whether a finding is on the allow list: the exact value (any case), or an email at an allowed `@domain`."""
    value = value.lower()
    return value in allow or (kind == "email" and "@" + value.rpartition("@")[2] in allow)


def find(text: str, allow: frozenset[str] = frozenset()) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every PII or secret in `text`; digit runs that fail Luhn are not cards.

    `allow` holds lower-cased values that are not private (a company's public support address...).
    """
    candidates: list[tuple[str, int, int]] = []
    for match in _SCANNER.finditer(text):
        kind = match.lastgroup or ""
        if kind == "card" and not luhn_valid(_NON_DIGITS.sub("", match.group())):
            continue
        candidates.append((kind, match.start(), match.end()))
    candidates += secrets.find(text)
    found: list[tuple[str, int, int]] = []
    for kind, start, end in sorted(candidates, key=lambda item: (item[1], -item[2])):
        if found and start < found[-1][2]:  # overlaps one found already (which starts earlier or is longer)
            if end > found[-1][2]:
                found[-1] = (found[-1][0], found[-1][1], end)
            continue
        if allow and allowed(kind, text[start:end], allow):
            continue
        found.append((kind, start, end))
    return found


def redact(text: str, allow: frozenset[str] = frozenset()) -> tuple[str, Counter[str]]:
    """`text` with each finding (not on the allow list) replaced by `[KIND]`, and the kinds found."""
    findings = find(text, allow)
    if not findings:
        return text, Counter()
    parts: list[str] = []
    position = 0
    for kind, start, end in findings:
        parts += [text[position:start], f"[{kind.upper()}]"]
        position = end
    parts.append(text[position:])
    return "".join(parts), Counter(kind for kind, _, _ in findings)
