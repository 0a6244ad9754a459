"""The prepare step's settings: one typed object, filled from command-line arguments."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prepare.pii import MODES as PII_MODES
from prepare.records import CANONICAL_FIELDS
from prepare.split import HOLDOUT_MODES, HOLDOUT_PHRASINGS


class SettingsError(ValueError):
    """A setting out of range; the message names it."""


@dataclass(frozen=True)
class PrepareSettings:
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 42
    min_examples: int = 32
    max_reject_rate: float = 0.5
    max_tokens: int = 2048
    max_file_mb: float = 1024.0
    pii: str = "redact"
    pii_allow: tuple[str, ...] = ()
    near_duplicate_threshold: float = 0.85
    columns: dict[str, str] = field(default_factory=dict)
    replay_fraction: float = 1.0
    retrain_min_change: float = 0.0
    holdout: str = HOLDOUT_PHRASINGS
    max_changed_fraction: float = 0.3
    allow_changes: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("validation_fraction", 0 <= self.validation_fraction < 1, "at least 0 and below 1"),
            ("test_fraction", 0 <= self.test_fraction < 1 and self.validation_fraction + self.test_fraction < 1,
             "at least 0, with validation_fraction + test_fraction below 1"),
            ("min_examples", self.min_examples >= 1, "at least 1"),
            ("max_reject_rate", 0 <= self.max_reject_rate <= 1, "between 0 and 1"),
            ("max_tokens", self.max_tokens >= 1, "at least 1"),
            ("max_file_mb", self.max_file_mb > 0, "greater than 0"),
            ("pii", self.pii in PII_MODES, f"one of {', '.join(PII_MODES)}"),
            ("near_duplicate_threshold", 0 < self.near_duplicate_threshold <= 1, "in (0, 1]"),
            ("replay_fraction", 0 < self.replay_fraction <= 1, "in (0, 1]"),
            ("retrain_min_change", self.retrain_min_change >= 0, "at least 0 (above 1: never train)"),
            ("holdout", self.holdout in HOLDOUT_MODES, f"one of {', '.join(HOLDOUT_MODES)}"),
            ("max_changed_fraction", 0 <= self.max_changed_fraction <= 1, "between 0 and 1"),
            ("workers", self.workers >= 0, "at least 0 (0 = one per CPU)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise SettingsError(f"--{name.replace('_', '-')} must be {expected}, got {getattr(self, name)!r}")
        unknown = sorted(set(self.columns) - set(CANONICAL_FIELDS))
        if unknown:
            raise SettingsError(f"--columns names unknown field(s) {unknown}; known: {', '.join(CANONICAL_FIELDS)}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def recorded(self) -> dict[str, Any]:
        """The settings as recorded in report.json and the manifest (workers change nothing, so left out)."""
        values = asdict(self)
        values.pop("workers")
        return values


def parse_list(text: str) -> tuple[str, ...]:
    """`a,b , c` → ("a", "b", "c")."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_columns(text: str) -> dict[str, str]:
    """`prompt=query,completion=response` → {"prompt": "query", "completion": "response"}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        canonical, sep, source = item.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise SettingsError(f"--columns expects FIELD=COLUMN pairs separated by commas, got {item!r}")
        mapping[canonical.strip().lower()] = source.strip()
    return mapping
