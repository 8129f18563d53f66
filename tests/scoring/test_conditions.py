"""Conditions: every operator, combinators, typing and missing paths."""

from __future__ import annotations

import fnmatch
import re
import warnings
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scoring.catalog import path_problem
from streams.scoring.conditions import compile_condition
from streams.scoring.patterns import MEMO_LIMIT, MEMO_TEXT_LIMIT, glob_condition, glob_to_re2

ROOTS = frozenset({"url", "amount", "status", "attributes"})


def compiled(spec: Any) -> Any:
    problems: list[tuple[str, str]] = []
    predicate = compile_condition(
        spec,
        check_path=partial(path_problem, roots=ROOTS),
        report=lambda f, m: problems.append((f, m)),
        field="where",
    )
    assert problems == [], problems
    assert predicate is not None
    return predicate


URL = {"url": "https://Example.com/Pricing?plan=pro"}
AMOUNT = {"amount": Decimal("125.50")}
ATTRS = {"attributes": {"industry": "saas", "size": Decimal(50), "vip": True, "emp": "120"}}


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        # eq on strings is exact and case-sensitive
        ({"url": {"eq": "https://Example.com/Pricing?plan=pro"}}, URL, True),
        ({"url": {"eq": "https://example.com/pricing?plan=pro"}}, URL, False),
        # eq on numbers compares as Decimal (125.5 == 125.50)
        ({"amount": {"eq": Decimal("125.5")}}, AMOUNT, True),
        # a numeric string compares as a number against a number operand
        ({"attributes.emp": {"eq": 120}}, ATTRS, True),
        # booleans equal only booleans
        ({"attributes.vip": {"eq": True}}, ATTRS, True),
        ({"attributes.size": {"eq": True}}, ATTRS, False),
        # ne is the negation of eq, so it holds when the path is missing
        ({"attributes.region": {"ne": "eu"}}, ATTRS, True),
        ({"attributes.industry": {"ne": "saas"}}, ATTRS, False),
        # in / not_in
        ({"attributes.industry": {"in": ["saas", "fintech"]}}, ATTRS, True),
        ({"attributes.size": {"in": [10, 50]}}, ATTRS, True),
        ({"attributes.industry": {"not_in": ["retail"]}}, ATTRS, True),
        ({"attributes.region": {"not_in": ["eu"]}}, ATTRS, True),
        ({"attributes.region": {"in": ["eu"]}}, ATTRS, False),
        # ordering on numbers
        ({"amount": {"gt": 100}}, AMOUNT, True),
        ({"amount": {"gte": Decimal("125.50")}}, AMOUNT, True),
        ({"amount": {"lt": 125}}, AMOUNT, False),
        ({"amount": {"lte": Decimal("125.5")}}, AMOUNT, True),
        # several operators on one path mean all of them (a range)
        ({"amount": {"gte": 100, "lt": 200}}, AMOUNT, True),
        # ordering on strings is lexicographic
        ({"attributes.industry": {"gt": "retail"}}, ATTRS, True),
        # ordering: a string field against a number operand that is not numeric
        ({"attributes.industry": {"gt": 5}}, ATTRS, False),
        # contains / starts_with are case-sensitive
        ({"url": {"contains": "Pricing"}}, URL, True),
        ({"url": {"contains": "pricing"}}, URL, False),
        ({"url": {"starts_with": "https://"}}, URL, True),
        # glob is case-insensitive and matches the whole value
        ({"url": {"glob": "*/pricing*"}}, URL, True),
        ({"url": {"glob": "*/pricing"}}, URL, False),
        # regex searches anywhere
        ({"url": {"regex": "plan=(pro|team)"}}, URL, True),
        ({"url": {"regex": "^plan"}}, URL, False),
        # exists
        ({"url": {"exists": True}}, URL, True),
        ({"url": {"exists": False}}, URL, False),
        ({"attributes.region": {"exists": False}}, ATTRS, True),
        # a missing path fails every other operator
        ({"attributes.region": {"contains": "e"}}, ATTRS, False),
        ({"amount": {"gt": 0}}, URL, False),
        # a null value counts as missing
        ({"url": {"exists": True}}, {"url": None}, False),
        # all / any / not
        ({"all": [{"url": {"contains": "Pricing"}}, {"url": {"contains": "pro"}}]}, URL, True),
        ({"any": [{"url": {"contains": "nope"}}, {"url": {"contains": "pro"}}]}, URL, True),
        ({"not": {"url": {"contains": "pro"}}}, URL, False),
        # a bare mapping with several paths means all
        ({"amount": {"gt": 1}, "url": {"exists": True}}, {**URL, **AMOUNT}, True),
        ({"amount": {"gt": 1}, "url": {"exists": True}}, AMOUNT, False),
    ],
)
def test_operators(spec: Any, fields: dict[str, Any], expected: bool) -> None:
    assert compiled(spec)(fields) is expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        # an empty condition
        ({}, ("where", "must be a non-empty mapping of paths or all/any/not")),
        # a path into a non-map field
        (
            {"url.host": {"eq": "x"}},
            ("where.url.host", "field 'url' is not a map; 'url.host' cannot reach into it"),
        ),
        # a map path must name one entry
        (
            {"attributes": {"exists": True}},
            (
                "where.attributes",
                "path 'attributes' must name one entry of the map, e.g. 'attributes.industry'",
            ),
        ),
        # exists needs a boolean
        ({"url": {"exists": "yes"}}, ("where.url.exists", "must be true or false (got 'yes')")),
        # in needs a list
        (
            {"url": {"in": "abc"}},
            (
                "where.url.in",
                "must be a list of 1 to 1000 strings, numbers or booleans (got 'abc')",
            ),
        ),
        # a too long pattern
        (
            {"url": {"glob": "x" * 257}},
            (
                "where.url.glob",
                "must be a non-empty string of at most 256 characters (got '" + "x" * 76 + "...)",
            ),
        ),
        # any needs a list
        ({"any": {"url": {"eq": "x"}}}, ("where.any", "must be a non-empty list of conditions")),
    ],
)
def test_condition_mistakes(spec: Any, problem: tuple[str, str]) -> None:
    problems: list[tuple[str, str]] = []
    result = compile_condition(
        spec,
        check_path=partial(path_problem, roots=ROOTS),
        report=lambda f, m: problems.append((f, m)),
        field="where",
    )
    assert result is None
    assert problems == [problem]


def test_glob_memo_gives_the_same_answers_and_stays_bounded() -> None:
    """More distinct texts than the memo holds, each asked twice: answers as fnmatch's."""
    import fnmatch

    from streams.scoring.patterns import MEMO_LIMIT, glob_predicate

    for pattern in ("*/pricing*", "https://*.example.com/docs/?*", "exact"):
        match = glob_predicate(pattern, lambda f: f.get("url"))
        texts = [f"https://www.example.com/{'pricing' if i % 7 else 'docs'}/{i}"
                 for i in range(MEMO_LIMIT + 500)]  # fmt: skip
        texts += ["EXACT", "exact", "https://a.example.com/docs/x"]
        for text in texts + texts:
            expected = fnmatch.fnmatchcase(text.lower(), pattern.lower())
            assert match({"url": text}) is expected, (pattern, text)
        assert match({"url": 7}) is False
        assert match({}) is False


# --- regex and glob on RE2 -----------------------------------------------------------------

WHY = (
    "which plan regexes do not support: they run on RE2, which guarantees matching in linear "
    "time and so never backtracks"
)


def regex_problems(pattern: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    result = compile_condition(
        {"url": {"regex": pattern}},
        check_path=partial(path_problem, roots=ROOTS),
        report=lambda f, m: problems.append((f, m)),
        field="where",
    )
    assert (result is None) == bool(problems)
    return problems


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        # a numbered backreference
        (r"(a)\1", f"uses a backreference (\\1), {WHY} (got '(a)\\1')"),
        # a named backreference, Python's spelling
        (r"(?P<x>a)(?P=x)", f"uses a backreference (?P=name), {WHY} (got '(?P<x>a)(?P=x)')"),
        # lookahead, positive and negative
        (r"pricing(?=\?)", f"uses a lookahead (?=...), {WHY} (got 'pricing(?=\\?)')"),
        (r"^(?!.*careers)", f"uses a negative lookahead (?!...), {WHY} (got '^(?!.*careers)')"),
        # lookbehind, positive and negative
        (r"(?<=/)docs", f"uses a lookbehind (?<=...), {WHY} (got '(?<=/)docs')"),
        (r"(?<!www\.)x", f"uses a negative lookbehind (?<!...), {WHY} (got '(?<!www\\.)x')"),
        # an atomic group
        (r"(?>a+)b", f"uses an atomic group (?>...), {WHY} (got '(?>a+)b')"),
        # possessive repeats
        (r"a++b", f"uses a possessive repeat (++), {WHY} (got 'a++b')"),
        (r"a*+b", f"uses a possessive repeat (*+), {WHY} (got 'a*+b')"),
        (r"a{2}+", f"uses a possessive repeat ({{2}}+), {WHY} (got 'a{{2}}+')"),
        # a conditional
        (r"(a)?(?(1)b|c)", f"uses a conditional (?(...)...), {WHY} (got '(a)?(?(1)b|c)')"),
        # a flag RE2 lacks (verbose)
        (
            r"(?x) a b",
            "uses (?x...), a group or flag RE2 does not know (its flags: i, m, s, U) "
            "(got '(?x) a b')",
        ),
        # Python's \u escape: RE2 spells code points \x{...}
        (
            r"caf\u00e9",
            "uses the escape \\u, which RE2 does not know; write a character by its code, "
            "e.g. \\x{e9} (got 'caf\\u00e9')",
        ),
        # a repeat count over RE2's limit of 1000
        (
            r"a{1001}",
            "repeats too much ({1001}): RE2 allows at most 1000 repetitions, nested repeats "
            "multiplied together (got 'a{1001}')",
        ),
        # nested repeat counts multiply: 1000 x 1000 is over the limit
        (
            r"(a{1000}){1000}",
            "repeats too much ({1000}): RE2 allows at most 1000 repetitions, nested repeats "
            "multiplied together (got '(a{1000}){1000}')",
        ),
        # within RE2's limits, but a program whose matching costs tens of ms on a 4 KB text
        (
            r".{1000}x",
            "compiles to 8005 RE2 instructions, more than 500: matching time grows with the "
            "program's size (a {1000} repeat costs about 30 ms on a 4 KB text): use smaller "
            "repeat counts or fewer wildcards (got '.{1000}x')",
        ),
        # a repeat whose maximum is below its minimum
        (r"a{3,2}", "the repeat {3,2} has its maximum below its minimum (got 'a{3,2}')"),
        # a program over RE2's memory budget (every letter of every script, 200 times)
        (
            r"\pL{200}",
            "is too large once compiled (over RE2's 2 MiB for one pattern): use smaller repeat "
            "counts or narrower character classes (got '\\pL{200}')",
        ),
        # plain syntax errors
        (
            r"(unclosed",
            "is not a valid regular expression: missing ) at '(unclosed' (got '(unclosed')",
        ),
        (
            r"[z-a]",
            "is not a valid regular expression: invalid character class range at 'z-a' "
            "(got '[z-a]')",
        ),
        ("ab\\", "is not a valid regular expression: trailing \\ (got 'ab\\')"),
    ],
)
def test_a_regex_re2_cannot_run_is_refused_in_plain_words(pattern: str, message: str) -> None:
    assert regex_problems(pattern) == [("where.url.regex", message)]


#: A catastrophic pattern for a backtracking engine, a text, whether ``re.search`` finds it.
ADVERSARIAL = [
    # the alternation classic: 45 a's and a "!" take a backtracking engine minutes
    ("^(a|aa)+$", "a" * 45 + "!", False),
    ("^(a|aa)+$", "a" * 45, True),
    # nested plus, unanchored at the start: every start position fails
    ("(a+)+$", "a" * 45 + "!", False),
    ("(a+)+$", "!" + "a" * 45, True),
    # a polynomial one: 25 a's needed, 24 given
    ("(.*a){25}", "a" * 24, False),
    ("(.*a){25}", "ba" * 25, True),
    ("(.*a){25}", "x" * 4000, False),
    # two pluses in a plus, no y
    ("(x+x+)+y", "x" * 45, False),
    ("(x+x+)+y", "x" * 45 + "y", True),
    # words and optional spaces, ended by a character that is neither
    (r"^(\w+\s?)*$", "a" * 45 + "!", False),
    (r"^(\w+\s?)*$", "lead scoring works", True),
    # an e-mail-ish classic against a long local part with no @
    (r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@)", "a" * 45 + "!", False),
    # the longest text a field may hold (4096 characters), adversarial
    ("^(a|aa)+$", "a" * 4095 + "!", False),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), ADVERSARIAL)
def test_catastrophic_classics_are_accepted_and_match_right(
    pattern: str, text: str, expected: bool
) -> None:
    assert regex_problems(pattern) == []
    assert compiled({"url": {"regex": pattern}})({"url": text}) is expected


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # search anywhere, as re.search
        ("pricing", "https://x/pricing-faq", True),
        # case-sensitive unless (?i)
        ("PRICING", "https://x/pricing", False),
        ("(?i)PRICING", "https://x/pricing", True),
        # . does not match a newline unless (?s)
        ("a.b", "a\nb", False),
        ("(?s)a.b", "a\nb", True),
        # Python's \Z is RE2's \z: the very end
        (r"pro\Z", "plan=pro", True),
        (r"pro\Z", "plan=pro&x=1", False),
        # an escaped backslash before Z is a backslash and a Z
        (r"a\\Z", "a\\Z", True),
        # Python's {,n} is 0 to n; a brace that is no repeat stays literal
        ("^a{,2}$", "aa", True),
        ("^a{,2}$", "aaa", False),
        ("^a{,}$", "aaaa", True),
        ("a{,x}", "a{,x}", True),
        # {,n} inside a class is literal
        ("^[{,2}]+$", "{,}2", True),
        # non-ASCII text and classes: code points, not bytes
        ("^caf.$", "café", True),
        (r"^\x{e9}t\x{e9}$", "été", True),
        (r"^\p{Greek}+$", "λόγος", True),
        # a lone surrogate (a JSON "\ud800") is one character
        ("^a.b$", "a\ud800b", True),
        # named groups, Python's spelling and the newer one
        ("(?P<plan>pro|team)$", "plan=team", True),
    ],
)
def test_regex_semantics(pattern: str, text: str, expected: bool) -> None:
    assert compiled({"url": {"regex": pattern}})({"url": text}) is expected


SAFE_REGEX = st.recursive(
    st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "(?:)", "^", "$"]),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?"])).map(
            lambda p: f"(?:{p[0]}){p[1]}"
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(pattern=SAFE_REGEX, text=st.text(alphabet="ab1!", max_size=10))
def test_regex_answers_as_re_search(pattern: str, text: str) -> None:
    """On texts without a newline (where ``$`` differs), RE2 finds what ``re.search`` finds."""
    assert compiled({"url": {"regex": pattern}})({"url": text}) is (
        re.search(pattern, text) is not None
    )


def fnmatch_answer(pattern: str, text: str) -> bool:
    """What the glob meant before RE2: ``fnmatch.translate``, case-insensitive, on ``re``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE)
    return regex.match(text) is not None


def glob_answer(pattern: str, text: str) -> bool:
    problem, predicate = glob_condition(pattern, lambda f: f.get("url"))
    assert problem is None
    assert predicate is not None
    return predicate({"url": text})


@pytest.mark.parametrize(
    ("pattern", "re2", "text", "expected"),
    [
        # * is any run, ? one character (newlines included)
        ("*/pri?ing*", ".*\\x{2f}pri.ing.*", "https://x/PRICING\n", True),
        ("a?c", "a.c", "a\nc", True),
        ("a?c", "a.c", "ac", False),
        # consecutive stars are one
        ("a**b", "a.*b", "ab", True),
        # a class and a negated class
        ("[abc]x", "[abc]x", "Bx", True),
        ("[!abc]x", "[^abc]x", "bx", False),
        ("[!abc]x", "[^abc]x", "dx", True),
        # a range, case-insensitive both ways
        ("[a-c]", "[a-c]", "B", True),
        ("[A-C]", "[A-C]", "d", False),
        # ] first in a class is literal, with or without !
        ("[]a]", "[\\x{5d}a]", "]", True),
        ("[!]]", "[^\\x{5d}]", "]", False),
        # a dash first or last is literal
        ("[-a]", "[\\x{2d}a]", "-", True),
        ("[a-]", "[a\\x{2d}]", "-", True),
        # an empty range never matches; negated, it matches any character
        ("x[z-a]", "x[^\\x{0}-\\x{10ffff}]", "xa", False),
        ("x[!z-a]", "x(?s:.)", "x\n", True),
        # an empty range inside a class drops out with both its ends, the rest stays
        ("[a-cz-b]", "[a-c]", "b", True),
        ("[a-cz-b]", "[a-c]", "z", False),
        # an unclosed [ is a literal [
        ("x[ab", "x\\x{5b}ab", "x[AB", True),
        # regex syntax in a glob is literal: dots, pluses, braces, parentheses, backslashes
        (
            "a.b+(c){2}\\",
            "a\\x{2e}b\\x{2b}\\x{28}c\\x{29}\\x{7b}2\\x{7d}\\x{5c}",
            "a.b+(c){2}\\",
            True,
        ),
        ("a.b", "a\\x{2e}b", "axb", False),
        # POSIX classes mean nothing in a glob: [[:alpha:]] is a class of [ : a l p h and a ]
        ("[[:alpha:]]", "[\\x{5b}\\x{3a}alpha\\x{3a}]\\x{5d}", "p]", True),
        ("[[:alpha:]]", "[\\x{5b}\\x{3a}alpha\\x{3a}]\\x{5d}", "z]", False),
        # non-ASCII letters fold case too
        ("caf[é]", "caf[\\x{e9}]", "CAFÉ", True),
    ],
)
def test_glob_translation(pattern: str, re2: str, text: str, expected: bool) -> None:
    assert glob_to_re2(pattern) == re2
    assert glob_answer(pattern, text) is expected
    assert fnmatch_answer(pattern, text) is expected


@settings(max_examples=1000, deadline=None)
@given(
    pattern=st.text(alphabet="ab-!][*?Aé", max_size=8),
    text=st.text(alphabet="abAB-!][éÉ\n", max_size=6),
)
def test_glob_answers_as_fnmatch(pattern: str, text: str) -> None:
    """Any glob over a small alphabet (classes, ranges, negation, stars) answers as fnmatch,
    on the literal-and-star path and on RE2 alike."""
    assert glob_answer(pattern, text) is fnmatch_answer(pattern, text)


def test_regex_memo_gives_the_same_answers_and_skips_long_texts() -> None:
    """More distinct texts than the memo holds, short and long, each asked twice."""
    match = compiled({"url": {"regex": "^(a|aa)+$"}})
    texts = ["a" * (i % 50) + ("!" if i % 3 else "") for i in range(MEMO_LIMIT + 500)]
    texts += ["a" * (MEMO_TEXT_LIMIT + 1), "a" * (MEMO_TEXT_LIMIT + 1) + "!"]
    for text in texts + texts:
        assert match({"url": text}) is (text != "" and set(text) == {"a"}), text
