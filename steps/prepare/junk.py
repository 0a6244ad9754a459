"""Junk answers: placeholders and filler that must not be trained on, each class with its own reason code.

`junk_answer(prompt, completion)` returns (reason, detail) for a completion (a chat's final reply)
that carries no knowledge, else None. Reasons:

- `placeholder_answer`: the whole answer is a placeholder: N/A, n/a, none, null, nil, NaN, TBD,
  TBA, TODO, FIXME, XXX, ???, "-", "...", "placeholder", "coming soon", ... (case and surrounding
  punctuation ignored; "None, returns are free" is an answer, a bare "None" is not);
- `lorem_ipsum`: filler text ("lorem ipsum" anywhere in the answer);
- `answer_equals_prompt`: the answer repeats the question (normalized: case, whitespace and end
  punctuation ignored);
- `repeated_token`: one token over and over: three or more equal words ("yes yes yes") or one
  letter repeated four or more times ("aaaaaaa"; digits are left alone: a PIN may be "0000");
- `no_letters_or_digits`: nothing but punctuation or symbols ("!!!", "--- ---").

Short real answers pass: "Yes.", "No", "42", "$549", "No, it is not", "None, returns are free".
The checks are ordered cheapest first; most answers cost a regex search and a length test.
"""
from __future__ import annotations

import re

PLACEHOLDERS = frozenset("""n/a n.a n.a. na nan none null nil undefined tbd tba tbc todo fixme xx xxx xxxx
placeholder lorem ? ?? ??? ???? - -- --- . .. ... .... … — –""".split())
PLACEHOLDER_PHRASES = frozenset({"to do", "answer here", "your answer", "your answer here", "insert answer",
                                 "insert answer here", "not available", "not applicable", "to be determined",
                                 "to be confirmed", "to be announced", "coming soon"})
PLACEHOLDER_CHARS = 24  # no placeholder is longer: longer answers skip the lookup
REASONS = ("placeholder_answer", "lorem_ipsum", "answer_equals_prompt", "repeated_token", "no_letters_or_digits")
REPEAT_SCAN_CHARS = 400  # longer answers are not checked for one repeated token
_EDGES = " \t\r\n.,;:!?\"'`*_()[]{}<>"
_ALNUM = re.compile(r"[^\W_]")
# Anchored, so most answers fail at their first word: nothing but punctuation; one word three or more times
# ("yes, yes, yes"); one letter four or more times ("aaaa"; digits are left alone: a PIN may be "0000").
_SHAPES = re.compile(r"(?P<symbols>[\W_]*\Z)|[\W_]*(?:(?P<word>[^\W_]+)(?:[\W_]+(?P=word)){2,}"
                     r"|(?P<letter>[^\W\d_])(?P=letter){3,})[\W_]*\Z", re.IGNORECASE)
_LOREM = re.compile(r"lorem\s+ipsum", re.IGNORECASE)


def _bare(text: str) -> str:
    """Lower-cased, whitespace collapsed, surrounding punctuation and quotes stripped."""
    return " ".join(text.lower().split()).strip(_EDGES)


def junk_answer(prompt: str, completion: str) -> tuple[str, str] | None:
    """(reason, detail) when the completion is junk (see the module docstring), else None.

    Cheap tests gate the costly ones: this runs on every row."""
    size = len(completion)
    if size <= PLACEHOLDER_CHARS:
        bare = _bare(completion)
        if bare in PLACEHOLDERS or bare in PLACEHOLDER_PHRASES or completion.strip().lower() in PLACEHOLDERS:
            return "placeholder_answer", f"answer {completion!r} is a placeholder, not an answer"
    if _ALNUM.search(completion) is None:
        return "no_letters_or_digits", f"answer {completion[:40]!r} has no letter or digit"
    if ("orem" in completion or "OREM" in completion) and _LOREM.search(completion):
        return "lorem_ipsum", "answer is lorem ipsum filler text"
    if abs(size - len(prompt)) <= 8 and _bare(completion) == _bare(prompt):
        return "answer_equals_prompt", "answer repeats the question"
    if size <= REPEAT_SCAN_CHARS and completion.rsplit(None, 1)[-1][:1].lower() == completion[:1].lower():
        shape = _SHAPES.match(completion)  # the last word starts like the first: maybe one token repeated
        if shape is not None and shape["symbols"] is None:
            token = shape["word"] or shape["letter"]
            return "repeated_token", f"answer is {token.lower()!r} repeated over and over"
    return None
