"""Text normalisation, done once per prompt and response before any signal looks at it.

``normalise``: Unicode NFKC (full-width letters, ligatures, compatibility spaces), typographic quotes
and apostrophes to ASCII (``I’m`` → ``i'm``), invisible format characters removed (zero-width space,
joiners, BOM), case folded, whitespace collapsed. Every feature (words, lengths, letters, empty and
refusal answers) reads the normalised text, so no check depends on how a client typed a quote.
"""
from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
                         "\u0060": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
                         "\u2033": '"', "\u00ab": '"', "\u00bb": '"'})
WORD = re.compile(r"\w+(?:'\w+)*")
REFUSAL = re.compile(  # on normalised text: lower case, ASCII apostrophes
    r"\b(?:(?:i am|i'm)\s+(?:so\s+|very\s+|really\s+)?(?:sorry|afraid|unable|not able)\b"
    r"|i\s+(?:can't|cannot|can not|won't|will not|am not able to|'m not able to|am unable to|'m unable to)\s+"
    r"(?:help|answer|assist|provide|share|do that|discuss|comply|give|tell)"
    r"|as an ai\b|i\s+(?:don't|do not)\s+have\s+(?:access|(?:any\s+)?information)"
    r"|i apologi[sz]e\b|^sorry\b|^unfortunately,? i\b)")


def normalise(text: str) -> str:
    """The one normal form every signal reads (see the module docstring)."""
    if text.isascii():
        return " ".join(text.translate(_QUOTES).lower().split())
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.casefold().split())


def words(normalised: str) -> list[str]:
    """The words of a normalised text (letters, digits, inner apostrophes)."""
    return WORD.findall(normalised)


def is_refusal(normalised: str) -> bool:
    return bool(REFUSAL.search(normalised))
