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
REPEAT_CHARS = 4  # one character this many times or more is junk ("aaaa", "xxxx")
REPEAT_WORDS = 3  # this many equal words or more are junk ("yes yes yes")
REPEAT_SCAN_CHARS = 400  # longer answers are not split into words for the repeated-token check
REASONS = ("placeholder_answer", "lorem_ipsum", "answer_equals_prompt", "repeated_token", "no_letters_or_digits")
_ALNUM = re.compile(r"[^\W_]")
_WORD = re.compile(r"[^\W_]+")
_EDGES = " \t\r\n.,;:!?\"'`*_()[]{}<>"


def _bare(text: str) -> str:
    """Lower-cased, whitespace collapsed, surrounding punctuation and quotes stripped."""
    return " ".join(text.lower().split()).strip(_EDGES)


def junk_answer(prompt: str, completion: str) -> tuple[str, str] | None:
    """(reason, detail) when the completion is junk (see the module docstring), else None."""
    lower = completion.lower()
    if len(completion) <= PLACEHOLDER_CHARS:
        bare = _bare(completion)
        if bare in PLACEHOLDERS or bare in PLACEHOLDER_PHRASES or lower.strip() in PLACEHOLDERS:
            return "placeholder_answer", f"answer {completion!r} is a placeholder, not an answer"
    if _ALNUM.search(completion) is None:
        return "no_letters_or_digits", f"answer {completion[:40]!r} has no letter or digit"
    if "lorem" in lower and "lorem ipsum" in " ".join(lower.split()):
        return "lorem_ipsum", "answer is lorem ipsum filler text"
    if abs(len(completion) - len(prompt)) <= 8 and _bare(completion) == _bare(prompt):
        return "answer_equals_prompt", "answer repeats the question"
    if len(completion) <= REPEAT_SCAN_CHARS:
        words = _WORD.findall(lower)
        if len(words) >= REPEAT_WORDS and words.count(words[0]) == len(words):
            return "repeated_token", f"answer is {words[0]!r} repeated {len(words)} times"
        if len(words) == 1 and len(words[0]) >= REPEAT_CHARS and len(set(words[0])) == 1 and words[0].isalpha():
            return "repeated_token", f"answer is {words[0][0]!r} repeated {len(words[0])} times"
    return None
