"""LogScale regexes in other dialects: Python ``re``, RE2 (KQL), PCRE (Splunk), Sigma's subset.

LogScale's engine (JitRex) is close to Java's: named groups ``(?<name>...)``, inline flags; it
rejects possessive quantifiers, ``\\p{..}``, ``\\k<name>``, ``\\h \\v \\R \\X \\G`` (SEMANTICS.md).
The patterns here already have LogScale's ``\\/`` escape removed (:func:`cqlx.lower.unescape_regex`).
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # the parser `re` uses (3.11+)
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Callable, Iterator
from functools import lru_cache

from cqlx.frozen import Frozen, record

__all__ = ["sre_constants", "sre_parse"]  # shared with the prefilter and the witness generator

# Features by name, as found by :func:`features`.
LOOKAHEAD = "lookahead"
LOOKBEHIND = "lookbehind"
BACKREFERENCE = "backreference"
NAMED_GROUP = "named group"
ATOMIC_GROUP = "atomic group"
POSSESSIVE = "possessive quantifier"
INLINE_FLAGS = "inline flags"
ANCHOR_Z = "\\Z anchor"
ANCHOR_A_z = "\\A or \\z anchor"
CLASS_ESCAPE = "class escape (\\d \\w \\s)"
UNICODE_CLASS = "\\p{..} class"
LAZY = "lazy quantifier"
OPEN_REPEAT = "{,n} repetition"  # Python reads {0,n}; RE2 and PCRE read the text "{,n}"

# Sigma's portable subset (sigma-specification, appendix-modifiers): . ^ $ * + ? {n,m} [..] | ()
SIGMA_NON_PORTABLE = frozenset({LOOKAHEAD, LOOKBEHIND, BACKREFERENCE, NAMED_GROUP, ATOMIC_GROUP,
                                POSSESSIVE, INLINE_FLAGS, ANCHOR_Z, ANCHOR_A_z, CLASS_ESCAPE,
                                UNICODE_CLASS, LAZY, OPEN_REPEAT})
# RE2 (re2 syntax page): no lookaround, no backreferences, no atomic or possessive forms, no \Z.
RE2_UNSUPPORTED = frozenset({LOOKAHEAD, LOOKBEHIND, BACKREFERENCE, ATOMIC_GROUP, POSSESSIVE, ANCHOR_Z, OPEN_REPEAT})


@record
class Token(Frozen):
    """A piece of a regex: its kind (literal, class, group_open...) and text."""

    kind: str  # literal | escape | class | group_open | group_close | quantifier | other
    text: str


# A rule's patterns are analysed by every emitter and several times by each: the pure functions
# of a pattern below are memoised (a batch of 1,000 rules spent a tenth of its time in tokens()).
_MEMO = lru_cache(maxsize=4096)


_GROUP_OPEN = re.compile(r"\(\?(?:<[=!]|[=!>:]|P?<[A-Za-z_]\w*>|[a-zA-Z-]+\)|[a-zA-Z-]+:)?")
_QUANTIFIER = re.compile(r"(?:[*+?]|\{\d*,?\d*\})[+?]?")


@_MEMO
def tokens(pattern: str) -> tuple[Token, ...]:
    """A coarse tokenisation: enough to find features and rewrite groups safely."""
    out: list[Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            end = index + 2
            if pattern[index + 1:index + 2] in ("p", "P", "x") and pattern[end:end + 1] == "{":
                close = pattern.find("}", end)
                end = close + 1 if close > 0 else len(pattern)
            elif pattern[index + 1:index + 2] == "k" and pattern[end:end + 1] == "<":
                close = pattern.find(">", end)
                end = close + 1 if close > 0 else len(pattern)
            out.append(Token("escape", pattern[index:end]))
            index = end
        elif char == "[":
            end = index + 1
            if pattern[end:end + 1] == "^":
                end += 1
            if pattern[end:end + 1] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            out.append(Token("class", pattern[index:end + 1]))
            index = end + 1
        elif char == "(":
            match = _GROUP_OPEN.match(pattern, index)
            text = match.group(0) if match else "("
            out.append(Token("group_open", text))
            index += len(text)
        elif char == ")":
            out.append(Token("group_close", ")"))
            index += 1
        elif char in "*+?{":
            match = _QUANTIFIER.match(pattern, index)
            text = match.group(0) if match else char
            out.append(Token("quantifier" if match else "literal", text))
            index += len(text)
        else:
            out.append(Token("literal", char))
            index += 1
    return tuple(out)


@_MEMO
def features(pattern: str) -> frozenset[str]:
    """The regex features a pattern uses that dialects disagree on."""
    found: set[str] = set()
    for token in tokens(pattern):
        text = token.text
        if token.kind == "group_open":
            if text in ("(?=", "(?!"):
                found.add(LOOKAHEAD)
            elif text in ("(?<=", "(?<!"):
                found.add(LOOKBEHIND)
            elif text == "(?>":
                found.add(ATOMIC_GROUP)
            elif text.startswith(("(?<", "(?P<")):
                found.add(NAMED_GROUP)
            elif text.startswith("(?") and text not in ("(?:",):
                found.add(INLINE_FLAGS)
        elif token.kind == "quantifier" and len(text) > 1 and text[-1] in "+?":
            found.add(POSSESSIVE if text[-1] == "+" else LAZY)
        if token.kind == "quantifier" and text.startswith("{,"):
            found.add(OPEN_REPEAT)
        elif token.kind == "escape":
            letter = text[1:2]
            if (letter.isdigit() and letter != "0") or letter == "k":
                found.add(BACKREFERENCE)
            elif letter == "Z":
                found.add(ANCHOR_Z)
            elif letter in ("A", "z"):
                found.add(ANCHOR_A_z)
            elif letter in "dDwWsSbB":
                found.add(CLASS_ESCAPE)
            elif letter in "pP":
                found.add(UNICODE_CLASS)
        elif token.kind == "class" and re.search(r"\\[dDwWsS]", text):
            found.add(CLASS_ESCAPE)
    return frozenset(found)


def _rewrite(pattern: str, group: dict[str, str], escape: dict[str, str]) -> str:
    out: list[str] = []
    for token in tokens(pattern):
        if token.kind == "group_open" and token.text.startswith("(?<") and token.text[3:4] not in "=!":
            out.append(group.get("named", token.text).replace("NAME", token.text[3:-1]))
        elif token.kind == "escape" and token.text in escape:
            out.append(escape[token.text])
        else:
            out.append(token.text)
    return "".join(out)


@_MEMO
def to_python(pattern: str) -> str:
    """For Python's ``re``: ``(?<n>`` → ``(?P<n>``; Java's ``\\z`` is Python's ``\\Z``, and Java's
    ``\\Z`` (end, or before a final newline) becomes a lookahead."""
    return _rewrite(pattern, {"named": "(?P<NAME>"}, {"\\z": "\\Z", "\\Z": "(?=\\n?\\Z)"})


@_MEMO
def to_re2(pattern: str) -> str:
    """For RE2 (KQL ``matches regex``): ``(?<n>`` → ``(?P<n>``; ``\\z`` is the same in RE2."""
    return _rewrite(pattern, {"named": "(?P<NAME>"}, {})


@_MEMO
def to_sigma(pattern: str, flags: str = "") -> str:
    """For Sigma's ``|re`` (PCRE-like, and Python's ``re`` in pySigma's own backends): Java's
    ``\\Z`` is ``$`` there, when ``$`` is not multi-line; named groups are plain groups (Sigma
    extracts nothing, and its portable subset has no names)."""
    plain = unname_groups(pattern)
    return plain if "m" in flags else _rewrite(plain, {}, {"\\Z": "$"})


@_MEMO
def to_pcre(pattern: str) -> str:
    """For PCRE (Splunk): LogScale's syntax is already PCRE for every feature LogScale accepts."""
    return pattern


def flag_prefix(flags: str) -> str:
    """LogScale flags as an inline group for RE2/PCRE: i → i, m → m, d (dot-all) → s."""
    letters = "".join(x for f, x in (("i", "i"), ("m", "m"), ("d", "s")) if f in flags)
    return f"(?{letters})" if letters else ""


def python_flags(flags: str) -> int:
    """LogScale flags as ``re`` flags. ASCII: like Java's default, ``\\w`` and case-folding are ASCII."""
    value = re.ASCII
    if "i" in flags:
        value |= re.IGNORECASE
    if "m" in flags:
        value |= re.MULTILINE
    if "d" in flags:
        value |= re.DOTALL
    return value


@_MEMO
def python_compiled(pattern: str, flags: int = 0) -> re.Pattern[str] | str:
    """The pattern (already in Python's dialect) compiled by ``re``, or why ``re`` refuses it. Kept
    per pattern: each target checks the patterns of a rule, and ``re``'s own cache holds only 512."""
    try:
        return re.compile(pattern, flags)
    except (re.error, ValueError, OverflowError, RecursionError) as error:
        return str(error) or type(error).__name__


def python_error(pattern: str, flags: int = 0) -> str | None:
    """Why Python's ``re`` refuses the pattern (already in Python's dialect), or None."""
    compiled = python_compiled(pattern, flags)
    return compiled if isinstance(compiled, str) else None


@_MEMO
def re2_error(pattern: str) -> str | None:
    """Why RE2 refuses the pattern (its size limits included), or None when it compiles it."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal to stderr
    try:
        re2.compile(pattern, options)
    except Exception as error:  # re2.error, or its size limits
        return str(error) or type(error).__name__
    return None


@_MEMO
def matches_empty(pattern: str, flags: str = "") -> bool:
    """Whether the pattern finds a match in the empty string (so a test on ``""`` would pass)."""
    compiled = python_compiled(to_python(pattern), python_flags(flags))
    return isinstance(compiled, str) or compiled.search("") is not None


@_MEMO
def may_match_nothing(pattern: str, flags: str = "") -> bool:
    """Whether a match may be empty somewhere in a text (``\\b``, ``a*``), not only in the empty
    string: where engines that find every match part ways. True when unsure."""
    try:
        return bool(sre_parse.parse(to_python(pattern), python_flags(flags)).getwidth()[0] == 0)
    except (re.error, OverflowError, RecursionError, ValueError):
        return True


def glob_to_regex(pattern: str, end: str = "\\z", dotall: bool = True, escape: Callable[[str], str] = re.escape
                  ) -> str:
    """An anchored regex for a LogScale ``*`` glob (``end`` is ``\\Z`` for Python); ``*`` spans
    newlines, so the regex is dot-all unless the caller sets that flag itself. ``escape`` quotes
    the literal parts (:func:`re2_escape` for RE2)."""
    body = "^" + ".*".join(escape(part) for part in pattern.split("*")) + end
    return "(?s)" + body if dotall else body


_RE2_META = frozenset("\\.+*?()|[]{}^$")


def re2_escape(text: str) -> str:
    """Literal text for RE2: a backslash before each metacharacter; everything else is literal
    there (re2 syntax page), where ``re.escape`` also escapes characters RE2 may not accept."""
    return "".join("\\" + char if char in _RE2_META else char for char in text)


# ---------------------------------------------------------------- linear-time matching

#: Features only a backtracking engine runs: the Python matcher bounds these in time instead.
BACKTRACKING = frozenset({LOOKAHEAD, LOOKBEHIND, BACKREFERENCE, ATOMIC_GROUP, POSSESSIVE})
_READ_DIFFERENTLY = frozenset({OPEN_REPEAT})
_END = "(?:\\n?\\z)"  # Python's `$` (no MULTILINE): the end, or before a final newline


@record
class LinearPlan(Frozen):
    """How RE2 runs a pattern with exactly the Python matcher's semantics, and on which values.

    RE2 differs from Python's ``re`` (ASCII mode) in three places the plan accounts for: ``$``
    (rewritten to ``\\n?\\z``), case folding beyond ASCII (RE2 folds Unicode: the Kelvin sign is
    a ``k``), so a case-insensitive plan runs only on ASCII values, and ``\\s`` (Python's has
    ``\\v``, RE2's does not), so a plan with ``\\s`` skips values holding a vertical tab. Values a
    plan does not cover go to ``re``, under the matcher's time limit."""

    pattern: str  # RE2 syntax, the flags inline
    ascii_only: bool = False
    vertical_tab: bool = False


@_MEMO
def linear_plan(pattern: str, flags: str = "") -> LinearPlan | None:
    """The RE2 plan for a LogScale pattern (already unescaped), or None when only a backtracking
    engine has its meaning: lookaround, backreferences, atomic or possessive forms, and syntax the
    two engines read differently (``{,n}``, POSIX-like ``[[:x:]]`` and set operations in classes,
    inline flags other than ``i``/``s``, which Python spells differently or RE2 lacks)."""
    if features(pattern) & (BACKTRACKING | _READ_DIFFERENTLY):
        return None
    ignore_case, multiline = "i" in flags, "m" in flags
    vertical_tab = False
    out: list[str] = []
    parsed = tokens(pattern)
    for token in parsed:
        text = token.text
        if token.kind == "group_open" and text.startswith("(?") and text[2:3] not in ("<", "P", ":"):
            letters = text[2:].rstrip(":)")
            if set(letters) - set("is-"):
                return None
            ignore_case = ignore_case or "i" in letters
        elif token.kind == "group_open" and text.startswith("(?<"):
            text = "(?P" + text[2:]
        elif token.kind == "class":
            inner = text[1:-1]
            if any(mark in inner for mark in ("[", "&&", "--", "||", "~~")):
                return None
            vertical_tab = vertical_tab or re.search(r"\\[sS]", text) is not None
        elif token.kind == "escape":
            vertical_tab = vertical_tab or text in ("\\s", "\\S")
            text = _END if text == "\\Z" else text
        elif token.kind == "literal" and text == "$" and not multiline:
            text = _END
        if text == _END and not _nothing_follows(parsed, len(out)):
            # _END consumes the final newline `$` only looks at: right only when nothing after it
            # in its branch could match that newline (`\Z\W` on "\n" matches in re, not in RE2).
            return None
        out.append(text)
    if ignore_case and not pattern.isascii():  # folding of non-ASCII letters: the engines' tables differ
        return None
    return LinearPlan(flag_prefix(flags) + "".join(out), ignore_case, vertical_tab)


def _nothing_follows(parsed: tuple[Token, ...], index: int) -> bool:
    """Whether the anchor at ``parsed[index]`` ends its branch: what follows it, up to the end of
    the pattern, is only group closes, other branches (skipped) and further end anchors."""
    position = index + 1
    while position < len(parsed):
        token = parsed[position]
        if token.kind == "group_close":
            pass  # the anchor's group ends; what follows the group follows the anchor
        elif token.kind == "literal" and token.text == "|":
            # The rest of this group is other branches: skip to the group's close.
            level = 0
            while position + 1 < len(parsed):
                position += 1
                kind = parsed[position].kind
                if kind == "group_open":
                    level += 1
                elif kind == "group_close":
                    if level == 0:
                        break
                    level -= 1
            else:
                return True  # a top-level alternation: the anchor's branch ends the pattern
            continue
        elif not (token.text in ("$", "\\Z", "\\z") and token.kind in ("literal", "escape")):
            return False
        position += 1
    return True


def glob_plan(patterns: tuple[str, ...], ignore_case: bool) -> LinearPlan | None:
    """The RE2 plan for a glob, or an alternation of globs (see :func:`glob_to_regex`)."""
    if ignore_case and not all(p.isascii() for p in patterns):
        return None
    body = "|".join(glob_to_regex(p, "\\z", False, re2_escape) for p in patterns)
    return LinearPlan(("(?si)" if ignore_case else "(?s)") + f"(?:{body})", ignore_case)


# ---------------------------------------------------------------- a file name's regex on a full path

_SEPARATORS = ("\\", "/")


def _parts(items: list[tuple[object, object]]) -> Iterator[tuple[object, object]]:
    """The parts of a parsed pattern at any depth: inside groups, alternatives and repeats."""
    c = sre_constants
    for op, argument in items:
        if op is c.SUBPATTERN:
            yield from _parts(list(argument[-1]))  # type: ignore[index]
        elif op is c.BRANCH:
            for branch in argument[1]:  # type: ignore[index]
                yield from _parts(list(branch))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            yield from _parts(list(argument[2]))  # type: ignore[index]
        else:
            yield op, argument


def _crosses_separator(items: list[tuple[object, object]], flags: int) -> bool:
    """Whether any part of a parsed pattern can match a path separator (or might: unknown parts)."""
    c = sre_constants
    for op, argument in _parts(items):
        if op is c.AT:
            continue
        if op is c.LITERAL:
            if chr(int(argument)) in _SEPARATORS:  # type: ignore[call-overload]
                return True
        elif op is c.IN:
            probe = re.compile(sre_parse_class(argument), flags)
            if any(probe.fullmatch(s) for s in _SEPARATORS):
                return True
        else:  # ANY, NOT_LITERAL, CATEGORY at top level, lookarounds, backreferences: assume it can
            return True
    return False


def sre_parse_class(items: object) -> str:
    """A parsed character class (``IN``) written back as a class, to test it on characters."""
    c = sre_constants
    parts: list[str] = []
    negated = ""
    for op, argument in items:  # type: ignore[attr-defined]
        if op is c.NEGATE:
            negated = "^"
        elif op is c.LITERAL:
            parts.append(re.escape(chr(argument)))
        elif op is c.RANGE:
            parts.append(f"{re.escape(chr(argument[0]))}-{re.escape(chr(argument[1]))}")
        elif op is c.CATEGORY:
            parts.append({c.CATEGORY_DIGIT: r"\d", c.CATEGORY_NOT_DIGIT: r"\D", c.CATEGORY_SPACE: r"\s",
                          c.CATEGORY_NOT_SPACE: r"\S", c.CATEGORY_WORD: r"\w",
                          c.CATEGORY_NOT_WORD: r"\W"}.get(argument, r"\W"))
        else:
            parts.append(r"\\/")  # unknown: assume it holds the separators
    return f"[{negated}{''.join(parts)}]"


#: A regex that matches nothing (in Python's re, RE2, PCRE and Sigma's subset).
NEVER = "[^\\s\\S]"


def basename_glob_regex(patterns: tuple[str, ...]) -> str:
    """A regex on a full path that matches exactly when one of the globs matches the path's file
    name: each ``*`` becomes "anything but a separator" (a file name holds none, so this is exact),
    and the match must start at the start or after a separator and end at the end. Plain groups
    only, as in Sigma's regex subset. A glob whose text holds a separator matches no file name
    and is left out."""
    alternatives = ["[^\\\\/]*".join(re.escape(part) for part in p.split("*")) for p in patterns
                    if not any(sep in p for sep in _SEPARATORS)]
    if not alternatives:
        return NEVER
    return "(^|[\\\\/])(" + "|".join(alternatives) + ")$"


@_MEMO
def basename_regex(pattern: str, flags: str = "") -> str | None:
    """A regex on a full path that matches exactly when ``pattern`` matches the path's file name
    (what follows its last ``\\`` or ``/``), or None when cqlx cannot say that.

    It can when nothing in the pattern can match a separator (so a match cannot start in a folder
    or run into one). Anchored at the end (``$``), a search of the full path finds the same match;
    not anchored there, the match must be followed by the rest of the name alone
    (``[^\\\\/]*$``). An anchor at the start (``^``) becomes "at the start or after a separator"
    (a plain group: Sigma's subset has no ``(?:``).
    ``/^(cmd|powershell)\\.exe$/i`` becomes ``(^|[\\\\/])(cmd|powershell)\\.exe$``; ``/psexec/i``
    becomes ``psexec[^\\\\/]*$``."""
    try:
        parsed = sre_parse.parse(to_python(pattern), python_flags(flags))
    except (re.error, ValueError, OverflowError, RecursionError):
        return None
    items = list(parsed)
    c = sre_constants
    if "|" not in _top_level(pattern) and any(op is c.LITERAL and chr(arg) in _SEPARATORS for op, arg in items):
        return NEVER  # every match holds a separator, which no file name does
    if "|" in _top_level(pattern) or "m" in flags or not items:
        return None
    at_end = items[-1] == (c.AT, c.AT_END) and pattern.endswith("$") and not pattern.endswith("\\$")
    anchored = items[0] == (c.AT, c.AT_BEGINNING) and pattern.startswith("^")
    body = items[1 if anchored else 0:-1 if at_end else None]
    if _has_anchor(body) or _crosses_separator(body, python_flags(flags)):
        return None
    core = (pattern[1:] if anchored else pattern) + ("" if at_end else "[^\\\\/]*$")
    return "(^|[\\\\/])" + core if anchored else core


def _has_anchor(items: list[tuple[object, object]]) -> bool:
    """Whether a parsed pattern holds ``^``, ``$``, ``\\b`` or another anchor, at any depth."""
    return any(op is sre_constants.AT for op, _ in _parts(items))


def _top_level(pattern: str) -> str:
    """The pattern's characters outside groups, classes and escapes (to find a top-level ``|``)."""
    out: list[str] = []
    depth = 0
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            out.append(char)
        index += 1
    return "".join(out)


# ---------------------------------------------------------------- named groups (field extraction)

_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _named_open(token: Token) -> str | None:
    """The name a group-opening token gives (``(?<name>`` or ``(?P<name>``), else None."""
    if token.kind != "group_open":
        return None
    if token.text.startswith("(?<") and token.text[3:4] not in ("=", "!"):
        return token.text[3:-1]
    if token.text.startswith("(?P<"):
        return token.text[4:-1]
    return None


def named_groups(pattern: str) -> tuple[str, ...]:
    """The names of the pattern's named groups, in order (a name given twice appears twice)."""
    return tuple(name for name in map(_named_open, tokens(pattern)) if name is not None)


def bad_group_name(pattern: str) -> str | None:
    """A group name no target can use as a field (LogScale's are letters, digits and ``_``; RE2,
    PCRE and Python accept only ASCII ones), or a name given twice (Java refuses it); else None."""
    seen: set[str] = set()
    for name in named_groups(pattern):
        if not _GROUP_NAME.fullmatch(name) or name in seen:
            return name
        seen.add(name)
    return None


def unname_groups(pattern: str) -> str:
    """The pattern with each named group made a plain group: it matches the same text, and a
    dialect without named groups (Sigma's subset) reads it. Group numbers do not change."""
    return "".join("(" if _named_open(token) is not None else token.text for token in tokens(pattern))


def group_numbers(pattern: str) -> dict[str, int]:
    """Each named group's number (1 for the first opening parenthesis that captures), as RE2 and
    KQL's ``extract()`` count them; ValueError when Python's ``re`` cannot read the pattern."""
    try:
        return dict(re.compile(to_python(pattern)).groupindex)
    except (re.error, OverflowError, RecursionError) as error:
        raise ValueError(str(error)) from None


def group_is_optional(pattern: str, flags: str, name: str) -> bool:
    """Whether a match may leave the named group empty or out (inside ``?``, ``*``, ``{0,n}``, an
    alternation or a negative lookaround, or able to match nothing): a target that cannot tell an
    empty value from a missing one, or that does not document either, may then read the field
    differently. True when unsure."""
    try:
        python = to_python(pattern)
        parsed = sre_parse.parse(python, python_flags(flags))
        number = re.compile(python, python_flags(flags)).groupindex[name]
    except (re.error, KeyError, OverflowError, RecursionError, ValueError):
        return True
    repeats = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None))
    stack: list[tuple[object, bool]] = [(parsed, False)]
    while stack:
        node, optional = stack.pop()
        items = node.data if hasattr(node, "data") else node
        if not isinstance(items, list):
            continue
        for op, arg in items:
            if op is sre_constants.SUBPATTERN:
                group, _, _, inner = arg
                if group == number:
                    return optional or bool(inner.getwidth()[0] == 0)
                stack.append((inner, optional))
            elif op in repeats:
                stack.append((arg[2], optional or arg[0] == 0))
            elif op is sre_constants.BRANCH:
                stack.extend((alternative, optional or len(arg[1]) > 1) for alternative in arg[1])
            elif op is sre_constants.ASSERT:
                stack.append((arg[1], optional))
            elif op is sre_constants.ASSERT_NOT or op is sre_constants.GROUPREF_EXISTS:
                stack.extend((x, True) for x in (arg[1:] if op is sre_constants.GROUPREF_EXISTS else (arg[1],))
                             if x is not None)
            elif op is getattr(sre_constants, "ATOMIC_GROUP", None):
                stack.append((arg, optional))
    return True
