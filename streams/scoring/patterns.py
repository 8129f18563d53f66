"""Plan patterns, ``glob`` and ``regex``, compiled once and matched on RE2 in linear time.

RE2 (the ``google-re2`` package) never backtracks: a match takes time linear in the text,
whatever the pattern, so no plan can stall the worker's loop with a catastrophic expression
such as ``^(a|aa)+$``. Syntax that only a backtracking engine can run (backreferences,
lookaround, atomic groups, possessive repeats, conditionals) is refused when the plan is
checked, with a message that names the construct and says why.

Globs made of literals and ``*`` skip the engine. Each pattern remembers its answer per text it
has seen (a bounded memo, cleared when full): traffic repeats the same URLs, and a dict lookup
is cheaper than a call into RE2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import re2
from re2 import _re2  # the binding under re2's re-like API: one call a match, no match object

#: Distinct texts remembered per pattern before the memo starts over.
MEMO_LIMIT: Final = 4096
#: Longer texts are matched every time, never remembered: the memo's memory stays bounded.
MEMO_TEXT_LIMIT: Final = 1024
#: RE2's memory budget per pattern, its compiled program and its match caches (RE2's default
#: is 8 MiB). A pattern whose program does not fit is refused at plan check (``\pL{200}``).
MAX_MEM: Final = 2 << 20
#: The most RE2 instructions one pattern may compile to. Matching is linear in the text, and
#: its constant grows with the program: measured on a 4,096-character text, ``(.*a){25}``
#: (279 instructions) takes about 5 ms, ``(a{30}){30}`` (964) 12 ms, ``.{1000}x`` (8,005) 32 ms;
#: real URL patterns compile to 4-50.
MAX_PROGRAM: Final = 500
_UNANCHORED: Final = _re2.RE2.Anchor.UNANCHORED
_ANCHOR_BOTH: Final = _re2.RE2.Anchor.ANCHOR_BOTH
#: A class no character is in (a glob's empty range, e.g. ``[z-a]``).
_NOTHING: Final = "[^\\x{0}-\\x{10ffff}]"
_WHY: Final = (
    "which plan regexes do not support: they run on RE2, which guarantees matching in linear "
    "time and so never backtracks"
)
#: What RE2 reports at the start of a refused group, and the construct in plain words.
_GROUPS: Final = (
    ("(?=", "a lookahead (?=...)"),
    ("(?!", "a negative lookahead (?!...)"),
    ("(?<=", "a lookbehind (?<=...)"),
    ("(?<!", "a negative lookbehind (?<!...)"),
    ("(?>", "an atomic group (?>...)"),
    ("(?(", "a conditional (?(...)...)"),
)

Getter = Callable[[dict[str, Any]], Any]
Predicate = Callable[[dict[str, Any]], bool]
Compiled = tuple[str | None, Predicate | None]


def glob_condition(pattern: str, get: Getter) -> Compiled:
    """``glob``: the whole value, case-insensitive, as ``fnmatch`` reads the pattern."""
    if any(c in pattern for c in "?["):
        regex, problem = _compile(glob_to_re2(pattern), glob=True)
        if regex is None:
            return problem, None
        return None, _memoized(_test(regex, _ANCHOR_BOTH), get)
    return None, _memoized(_star_test(pattern), get)


def regex_condition(pattern: str, get: Getter) -> Compiled:
    """``regex``: found anywhere in the value, as ``re.search`` finds it (RE2 syntax)."""
    regex, problem = _compile(_from_python(pattern), glob=False)
    if regex is None:
        return problem, None
    return None, _memoized(_test(regex, _UNANCHORED), get)


def glob_predicate(pattern: str, get: Getter) -> Predicate:
    """The predicate of a ``glob`` condition; ValueError if the pattern cannot be compiled."""
    problem, predicate = glob_condition(pattern, get)
    if predicate is None:
        raise ValueError(problem)
    return predicate


def _memoized(test: Callable[[str], bool], get: Getter) -> Predicate:
    memo: dict[str, bool] = {}

    def match(fields: dict[str, Any]) -> bool:
        value = get(fields)
        if type(value) is not str:
            return False
        found = memo.get(value)
        if found is None:
            found = test(value)
            if len(value) <= MEMO_TEXT_LIMIT:
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[value] = found
        return found

    return match


def _test(regex: Any, anchor: Any) -> Callable[[str], bool]:
    def test(value: str) -> bool:
        # Lone surrogates (a JSON "\ud800") pass through as bytes RE2 reads as one character.
        data = value.encode("utf-8", "surrogatepass")
        span: tuple[int, int] = regex.Match(anchor, data, 0, len(data))[0]
        return span[0] >= 0

    return test


def _compile(pattern: str, *, glob: bool) -> tuple[Any, str | None]:
    """The compiled RE2 program, or None and what is wrong with the pattern in plain words."""
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # a refused pattern is the plan author's to fix, not a log line
    options.never_capture = True  # whether it matches, never where: no submatches to track
    if glob:
        options.case_sensitive = False
        options.dot_nl = True
    regex = _re2.RE2(pattern.encode("utf-8", "surrogatepass"), options)
    if not regex.ok():
        return None, _explain(regex.error().decode("utf-8", "replace"), pattern)
    size = regex.ProgramSize()
    if size > MAX_PROGRAM:
        return None, (
            f"compiles to {size} RE2 instructions, more than {MAX_PROGRAM}: matching time grows "
            "with the program's size (a {1000} repeat costs about 30 ms on a 4 KB text): use "
            "smaller repeat counts or fewer wildcards"
        )
    return regex, None


def _explain(error: str, pattern: str) -> str:
    """RE2's error (``kind: fragment``) as a plan error."""
    kind, _, what = error.partition(": ")
    if kind in ("invalid perl operator", "invalid named capture group"):
        for start, construct in _GROUPS:
            if what.startswith(start):
                return f"uses {construct}, {_WHY}"
        if what == "(?P" and "(?P=" in pattern:
            return f"uses a backreference (?P=name), {_WHY}"
        return f"uses {what}...), a group or flag RE2 does not know (its flags: i, m, s, U)"
    if kind == "invalid escape sequence":
        if what[1:2].isdigit() or what in ("\\g", "\\k"):
            return f"uses a backreference ({what}), {_WHY}"
        hint = (
            "; write a character by its code, e.g. \\x{e9}" if what in ("\\u", "\\U", "\\N") else ""
        )
        return f"uses the escape {what}, which RE2 does not know{hint}"
    if kind == "bad repetition operator" and len(what) > 1 and what.endswith("+"):
        return f"uses a possessive repeat ({what}), {_WHY}"
    if kind == "invalid repetition size":
        low, _, high = what.strip("{}").partition(",")
        if low.isdigit() and high.isdigit() and int(high) < int(low):
            return f"the repeat {what} has its maximum below its minimum"
        return (
            f"repeats too much ({what}): RE2 allows at most 1000 repetitions, nested repeats "
            "multiplied together"
        )
    if kind.startswith("pattern too large"):
        return (
            f"is too large once compiled (over RE2's {MAX_MEM >> 20} MiB for one pattern): use "
            "smaller repeat counts or narrower character classes"
        )
    return f"is not a valid regular expression: {kind}" + (f" at '{what}'" if what else "")


def _from_python(pattern: str) -> str:
    """Python's spellings RE2 reads otherwise: ``\\Z`` (end of text) and ``{,n}`` (0 to n)."""
    out: list[str] = []
    i, n, in_class, class_start = 0, len(pattern), False, 0
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append("\\z" if pattern[i + 1] == "Z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = not (c == "]" and i > class_start)
        elif c == "[":
            in_class = True
            class_start = i + 2 if pattern.startswith("^", i + 1) else i + 1
        elif c == "{" and pattern.startswith(",", i + 1):
            close = pattern.find("}", i)
            if close > 0 and (close == i + 2 or pattern[i + 2 : close].isdigit()):
                out.append("{0")  # Python's {,n} and {,}; otherwise the brace is literal
                i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def glob_to_re2(pattern: str) -> str:
    """A glob in RE2 syntax, read as ``fnmatch.translate`` reads it (to match in full).

    ``*`` is any run of characters, ``?`` one character, ``[...]`` a class (``[!...]``
    negated, ``a-z`` ranges, an empty range never matches), an unclosed ``[`` and everything
    else literal. Case-insensitivity and ``.`` matching newlines are the compile's options.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1 if pattern.startswith("!", i) else i
            j = j + 1 if pattern.startswith("]", j) else j
            j = pattern.find("]", j)
            if j < 0:
                out.append(_char("["))
            else:
                out.append(_glob_class(pattern, i, j))
                i = j + 1
        else:
            out.append(_char(c))
    return "".join(out)


def _glob_class(pattern: str, i: int, j: int) -> str:
    """``pattern[i:j]``, the inside of a glob's ``[...]``, as an RE2 class (fnmatch's reading)."""
    chunks = [pattern[i:j]]
    if "-" in chunks[0]:  # split at range dashes, as fnmatch does; other dashes are literal
        chunks = []
        k = i + 2 if pattern[i] == "!" else i + 1
        while (k := pattern.find("-", k, j)) >= 0:
            chunks.append(pattern[i:k])
            i, k = k + 1, k + 3
        if i < j:
            chunks.append(pattern[i:j])
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):  # drop empty ranges such as z-a
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
    negated = chunks[0].startswith("!")
    if negated:
        chunks[0] = chunks[0][1:]
    # Between two chunks, the last character of one and the first of the next make a range.
    body = "-".join("".join(_char(c) for c in chunk) for chunk in chunks)
    if not body:
        return "(?s:.)" if negated else _NOTHING
    return f"[^{body}]" if negated else f"[{body}]"


def _char(c: str) -> str:
    """One character, literal in RE2 inside or outside a class."""
    return c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}"


def _star_test(pattern: str) -> Callable[[str], bool]:
    """A glob of literals and ``*``: compared on lower-cased text, no regex engine."""
    parts = pattern.lower().split("*")
    head, middle, tail = parts[0], parts[1:-1], parts[-1]
    if len(parts) == 1:
        return lambda value: value.lower() == head
    shortest = len(head) + len(tail)

    def test(value: str) -> bool:
        if len(value) < shortest:
            return False
        text = value.lower()
        if not text.startswith(head) or not text.endswith(tail):
            return False
        position, end = len(head), len(text) - len(tail)
        for part in middle:
            found = text.find(part, position, end)
            if found < 0:
                return False
            position = found + len(part)
        return True

    return test
