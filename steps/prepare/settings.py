"""The prepare step's settings: one typed object, filled from command-line arguments; the defaults are the
contract's (prepare/contract.py)."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from common.contract import by_name, typed_default
from prepare.contract import ARGUMENTS, HOLDOUT_MODES, PII_MODES
from prepare.records import CANONICAL_FIELDS

_ARGUMENTS = by_name(ARGUMENTS)


def _default(name: str) -> Any:
    """The dataclass field of the setting `name`, with its contract default (a fresh copy of a list or mapping)."""
    default = typed_default(_ARGUMENTS[name])
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.copy(default))
    return field(default=default)


class SettingsError(ValueError):
    """A setting out of range; the message names it."""


@dataclass(frozen=True)
class PrepareSettings:
    validation_fraction: float = _default("validation_fraction")
    test_fraction: float = _default("test_fraction")
    seed: int = _default("seed")
    min_examples: int = _default("min_examples")
    max_reject_rate: float = _default("max_reject_rate")
    max_tokens: int = _default("max_tokens")
    max_file_mb: float = _default("max_file_mb")
    max_row_mb: float = _default("max_row_mb")
    pii: str = _default("pii")
    pii_allow: tuple[str, ...] = _default("pii_allow")
    near_duplicate_threshold: float = _default("near_duplicate_threshold")
    columns: dict[str, str] = _default("columns")
    replay_fraction: float = _default("replay_fraction")
    retrain_min_change: float = _default("retrain_min_change")
    holdout: str = _default("holdout")
    max_changed_fraction: float = _default("max_changed_fraction")
    allow_changes: bool = _default("allow_changes")
    workers: int = _default("workers")

    def __post_init__(self) -> None:
        checks = [
            ("validation_fraction", 0 <= self.validation_fraction < 1, "at least 0 and below 1"),
            ("test_fraction", 0 <= self.test_fraction < 1 and self.validation_fraction + self.test_fraction < 1,
             "at least 0, with validation_fraction + test_fraction below 1"),
            ("min_examples", self.min_examples >= 1, "at least 1"),
            ("max_reject_rate", 0 <= self.max_reject_rate <= 1, "between 0 and 1"),
            ("max_tokens", self.max_tokens >= 1, "at least 1"),
            ("max_file_mb", self.max_file_mb > 0, "greater than 0"),
            ("max_row_mb", self.max_row_mb > 0, "greater than 0"),
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

    @property
    def max_row_bytes(self) -> int:
        return max(1, int(self.max_row_mb * 1024 * 1024))

    def recorded(self) -> dict[str, Any]:
        """The settings as recorded in report.json and the manifest (workers change nothing, so left out)."""
        values = asdict(self)
        values.pop("workers")
        return values

