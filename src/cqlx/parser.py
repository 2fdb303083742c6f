"""Text → AST: the Lark parser for ``grammar/cql.lark`` and errors a person can act on.

Syntax errors name the line and column, show the line with a caret, and say in words what was
expected ("a value after '='", "a closing ')'") rather than Lark's terminal names.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import lark
from lark import Token

from cqlx import ast as A
from cqlx import lalr, lexing
from cqlx.ast import Span
from cqlx.cache import cache_dir
from cqlx.errors import CqlError, CqlSyntaxError
from cqlx.resources import data_path

REGEX_FLAGS = frozenset("imdgF")

# Nesting deeper than this is not a detection query; refuse it before Python's stack does.
MAX_NESTING = 200
#: The longest query read, in characters: real detection queries are a few KB; a query past this is
#: refused up front rather than parsed for minutes (issue 8, limits on query size).
MAX_QUERY_LENGTH = 1_000_000


# No parse tree is built: the transformer below runs as each rule is reduced (Lark's embedded
# transformer), which takes a third off a parse. It sees every token, punctuation included
# (keep_all_tokens), because a node's span runs from its first token to its last — `count()` ends
# at its `)` — and computes it itself (propagate_positions only annotates trees).
_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual", "keep_all_tokens": True,
                            "maybe_placeholders": False}


@cache
def _parser() -> lark.Lark:
    return load_parser(data_path("grammar", "cql.lark").read_text(encoding="utf-8"), cache_dir())


@cache
def _driver() -> lalr.Driver | None:
    """Lark's tables, scanners and callbacks in one loop (:mod:`cqlx.lalr`): a quarter off a parse."""
    return lalr.driver(_parser())


def load_parser(grammar: str, directory: Path | None, *, first_char_scanner: bool = True) -> lark.Lark:
    """The LALR parser of ``grammar``, whose ``parse()`` returns the AST. Its tables are read from
    ``directory`` when an earlier run saved them for this grammar text, these options, this Lark
    and this Python (Lark's own cache, which checks a hash of all of them inside the file; the
    file's name is our hash of the same, so versions never overwrite each other's file), else
    built and saved there. A file that cannot be read (damaged) or written (read-only) only costs
    the build: Lark logs it on its own logger, silent unless configured. The lexer's states scan
    with :mod:`cqlx.lexing` (the same tokens as Lark's scanner, without compiling a regex per
    state) unless ``first_char_scanner`` is false."""
    key = "\0".join([grammar, repr(sorted(_OPTIONS.items())), lark.__version__, sys.version])
    path = None if directory is None else directory / f"cql-{hashlib.sha256(key.encode()).hexdigest()[:32]}.lark"
    parser = lark.Lark(grammar, cache=str(path) if path is not None else False,
                       transformer=_ToAst(_named_terminals(grammar)), **_OPTIONS)
    if first_char_scanner:
        lexing.install(parser.parser.lexer)
    return parser


def _named_terminals(grammar: str) -> frozenset[str]:
    """The terminals the grammar names (``NAME: ...``): the tokens a rule keeps. The others are
    its quoted punctuation (``"("``, ``"|"``), which only delimit a node."""
    return frozenset(re.findall(r"^([A-Z][A-Z0-9_]*)(?:\.\d+)?\s*:", grammar, re.MULTILINE))


def parse(text: str) -> A.Pipeline:
    """Parse a CQL query into its syntax tree; raises :class:`CqlSyntaxError` on bad input."""
    if len(text) > MAX_QUERY_LENGTH:
        raise CqlSyntaxError(f"the query is {len(text):,} characters long; cqlx reads queries of up to "
                             f"{MAX_QUERY_LENGTH:,}", source=None)
    _check_nesting(text)
    try:
        fast = _driver()
        if fast is not None:
            with contextlib.suppress(lalr.Unparsed):  # Lark parses it again, for its error
                parsed: A.Pipeline = fast.parse(text)
                return parsed
        # Lark types parse() as returning a Tree; with an embedded transformer it returns the AST.
        result: A.Pipeline = _parser().parse(text)  # type: ignore[assignment]
    except CqlError as error:  # raised by the transformer, on a token it cannot read (a regex flag)
        raise error.located(text) from None
    except RecursionError:  # a chain of hundreds of operators, on a deep stack
        raise CqlSyntaxError("the query is nested too deeply (chains of hundreds of operators); split it "
                             "into pipeline stages", source=text) from None
    except lark.exceptions.UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return result


# What nesting is counted from: brackets, and strings (whose brackets do not count) skipped whole.
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"?|[(\[{]|[)\]}]', re.DOTALL)


def _check_nesting(text: str) -> None:
    depth = 0
    for found in _NESTING.finditer(text):
        char = found.group()
        if char in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                index = found.start()
                line = text.count("\n", 0, index) + 1
                column = index - (text.rfind("\n", 0, index) + 1) + 1
                raise CqlSyntaxError(f"nesting deeper than {MAX_NESTING} levels",
                                     Span(line, column, line, column + 1), text)
        elif char in _CLOSERS:
            depth = max(0, depth - 1)


_OPENERS = frozenset("([{")
_CLOSERS = frozenset(")]}")


# ---------------------------------------------------------------- tree → AST


def _token_span(token: Token) -> Span:
    return Span(token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)


def unescape_string(quoted: str) -> str:
    """The value of a CQL string literal: ``\\"``, ``\\\\`` and ``\\n`` are escapes; any other
    backslash stays in the value (CQL.md, lexical traps)."""
    body = quoted[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in '"\\':
                out.append(nxt)
                index += 2
                continue
            if nxt == "n":
                out.append("\n")
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _regex(token: Token) -> A.RegexLit:
    text = str(token)
    end = text.rindex("/")
    pattern, flags = text[1:end], text[end + 1:]
    bad = sorted(set(flags) - REGEX_FLAGS)
    if bad:
        raise CqlSyntaxError(
            f"unknown regex flag {bad[0]!r}: LogScale's flags are i (ignore case), m (multi-line), "
            "d (dot matches newline), g (global) and F (engine v2)", _token_span(token))
    return A.RegexLit(_token_span(token), pattern, flags)


def _param(token: Token) -> A.Param:
    """``?name`` or ``?{name=default}``; the default may be quoted."""
    text = str(token)[1:]
    if not text.startswith("{"):
        return A.Param(_token_span(token), text, None)
    name, sep, default = text[1:-1].partition("=")
    name, default = name.strip(), default.strip()
    if not name:
        raise CqlSyntaxError("a query parameter needs a name: ?{name=default}", _token_span(token))
    if len(default) >= 2 and default[0] == default[-1] == '"':
        default = unescape_string(default)
    return A.Param(_token_span(token), name, default if sep else None)


def _field(token: Token) -> A.FieldName:
    name = unescape_string(token) if token.type == "STRING" else str(token)
    return A.FieldName(_token_span(token), name)


def _leaf(item: Any) -> A.Expr:
    """A token standing where an expression may: a regex literal or a lone ``*``."""
    if isinstance(item, Token):
        if item.type == "REGEX":
            return _regex(item)
        if item.type == "STAR" or (item.type == "GLOB" and str(item) == "*"):
            return A.Star(_token_span(item))
        if item.type in ("GLOB", "DURATION", "ADDRESS"):
            return A.BareValue(_token_span(item), str(item))
        raise AssertionError(f"unexpected token {item.type}")  # the grammar allows no other
    result: A.Expr = item
    return result


def _nodes(children: list[Any]) -> list[Any]:
    """Children without keyword tokens (``and``, ``or``, ``!``) that only shape the tree."""
    return [c for c in children if not (isinstance(c, Token) and c.type in {"AND", "OR", "NOT", "BANG"})]


class _Group:
    """A parenthesised node on its way to its parent: the parent's span covers the parentheses,
    the node's own span does not (as Lark's propagated positions had it)."""

    __slots__ = ("node", "span")

    def __init__(self, node: Any, span: Span) -> None:
        self.node: Any = node.node if isinstance(node, _Group) else node
        self.span = span


def _span_of(children: list[Any]) -> Span:
    """From the first token of the first child to the end of the last one's last token."""
    if not children:
        return A.NO_SPAN
    first, last = children[0], children[-1]
    start = _token_span(first) if isinstance(first, Token) else first.span
    end = _token_span(last) if isinstance(last, Token) else last.span
    return Span(start.line, start.column, end.end_line, end.end_column)


_Method = Callable[["_ToAst", Span, list[Any]], Any]


def _rule(method: _Method) -> Callable[[_ToAst, list[Any]], Any]:
    """A rule's callback: its span, and its children without punctuation or groups."""
    def callback(self: _ToAst, children: list[Any]) -> Any:
        keep = self.keep
        kept = [c.node if isinstance(c, _Group) else c for c in children
                if not isinstance(c, Token) or c.type in keep]
        return method(self, _span_of(children), kept)
    return callback


class _ToAst:
    """One line per grammar rule: the tree is already shaped by the grammar. Lark calls these as it
    reduces each rule (the embedded transformer), with every token of the rule."""

    def __init__(self, named: frozenset[str]) -> None:
        self.keep = named  # the terminals a rule keeps; the rest are punctuation

    # `"(" logical ")"`, `"(" expr ")"`, `"(" array ")"`: the node, and its parentheses' span.
    def primary(self, children: list[Any]) -> _Group:
        return _Group(children[1], _span_of(children))

    atom = arg_value = primary

    @_rule
    def start(self, span: Span, c: list[Any]) -> A.Pipeline:
        return c[0] if c else A.Pipeline(span, ())

    @_rule
    def pipeline(self, span: Span, c: list[Any]) -> A.Pipeline:
        return A.Pipeline(span, tuple(c))

    @_rule
    def stats_shorthand(self, span: Span, c: list[Any]) -> A.Call:
        return A.Call(span, "stats", span, (A.Argument(span, None, c[0]),))

    @_rule
    def assignment(self, span: Span, c: list[Any]) -> A.Assignment:
        return A.Assignment(span, _field(c[0]), c[2])

    @_rule
    def case_stmt(self, span: Span, c: list[Any]) -> A.CaseStmt:
        return A.CaseStmt(span, tuple(c[1:]))

    @_rule
    def case_branch(self, span: Span, c: list[Any]) -> A.Pipeline:
        result: A.Pipeline = c[0]
        return result

    @_rule
    def match_stmt(self, span: Span, c: list[Any]) -> A.MatchStmt:
        return A.MatchStmt(span, _field(c[0]), tuple(c[2:]))

    @_rule
    def match_branch(self, span: Span, c: list[Any]) -> A.MatchBranch:
        return A.MatchBranch(span, c[0], c[1])

    @_rule
    def and_filter(self, span: Span, c: list[Any]) -> A.AndFilter:
        left, right = _nodes(c)
        return A.AndFilter(span, left, right)

    @_rule
    def or_filter(self, span: Span, c: list[Any]) -> A.OrFilter:
        left, right = _nodes(c)
        return A.OrFilter(span, left, right)

    @_rule
    def not_filter(self, span: Span, c: list[Any]) -> A.NotFilter:
        return A.NotFilter(span, c[1])

    @_rule
    def match_all(self, span: Span, c: list[Any]) -> A.MatchAll:
        return A.MatchAll(span)

    @_rule
    def comparison(self, span: Span, c: list[Any]) -> A.Comparison:
        return A.Comparison(span, _field(c[0]), str(c[1]), c[2])

    @_rule
    def param_compare(self, span: Span, c: list[Any]) -> A.Comparison:
        return A.Comparison(span, _field(c[0]), str(c[1]), _param(c[2]))

    @_rule
    def param(self, span: Span, c: list[Any]) -> A.Param:
        return _param(c[0])

    @_rule
    def param_filter(self, span: Span, c: list[Any]) -> A.ParamFilter:
        return A.ParamFilter(span, _param(c[0]))

    @_rule
    def not_fn_compare(self, span: Span, c: list[Any]) -> A.NotFilter:
        return A.NotFilter(span, A.FnCompare(span, _field(c[0]), c[3]))

    @_rule
    def named_query(self, span: Span, c: list[Any]) -> A.Argument:
        return A.Argument(span, str(c[0]), c[1])

    @_rule
    def link(self, span: Span, c: list[Any]) -> A.Comparison:
        return A.Comparison(span, _field(c[0]), "<=>", A.BareValue(_token_span(c[2]), str(c[2])))

    @_rule
    def named_query_include(self, span: Span, c: list[Any]) -> A.Argument:
        if str(c[2]) != "include":
            raise CqlSyntaxError(f"expected include: [fields] after a named query, found {str(c[2])!r}",
                                 _token_span(c[2]))
        query: A.SubQuery = c[1]
        return A.Argument(span, str(c[0]), A.SubQuery(Span(query.span.line, query.span.column, c[3].span.end_line,
                                                           c[3].span.end_column), query.pipeline, c[3]))

    @_rule
    def fn_compare(self, span: Span, c: list[Any]) -> A.FnCompare:
        return A.FnCompare(span, _field(c[0]), c[2])

    @_rule
    def free_text(self, span: Span, c: list[Any]) -> A.FreeText:
        token: Token = c[0]
        if token.type == "NAME":
            return A.FreeText(span, A.FieldRef(_token_span(token), str(token)))
        return A.FreeText(span, self._literal(token))

    @_rule
    def value(self, span: Span, c: list[Any]) -> A.StringLit | A.RegexLit | A.BareValue:
        token: Token = c[0]
        if token.type == "VALUE":
            return A.BareValue(_token_span(token), str(token))
        return self._literal(token)

    @staticmethod
    def _literal(token: Token) -> A.StringLit | A.RegexLit:
        if token.type == "REGEX":
            return _regex(token)
        return A.StringLit(_token_span(token), unescape_string(token))

    @_rule
    def call(self, span: Span, c: list[Any]) -> A.Call:
        return A.Call(span, str(c[0]), _token_span(c[0]), tuple(c[1:]))

    @_rule
    def positional(self, span: Span, c: list[Any]) -> A.Argument:
        return A.Argument(span, None, _leaf(c[0]))

    @_rule
    def named(self, span: Span, c: list[Any]) -> A.Argument:
        return A.Argument(span, str(c[0]), _leaf(c[2]))

    @_rule
    def array(self, span: Span, c: list[Any]) -> A.Array:
        return A.Array(span, tuple(_leaf(item) for item in c))

    @_rule
    def subquery(self, span: Span, c: list[Any]) -> A.SubQuery:
        return A.SubQuery(span, c[0])

    @_rule
    def binary(self, span: Span, c: list[Any]) -> A.Binary:
        return A.Binary(span, str(c[1]), c[0], c[2])

    @_rule
    def unary(self, span: Span, c: list[Any]) -> A.Unary:
        return A.Unary(span, str(c[0]), c[1])

    @_rule
    def number(self, span: Span, c: list[Any]) -> A.Number:
        return A.Number(_token_span(c[0]), str(c[0]))

    @_rule
    def string(self, span: Span, c: list[Any]) -> A.StringLit:
        return A.StringLit(_token_span(c[0]), unescape_string(c[0]))

    @_rule
    def field_ref(self, span: Span, c: list[Any]) -> A.FieldRef:
        return A.FieldRef(_token_span(c[0]), str(c[0]))


# ---------------------------------------------------------------- error messages

# What each terminal is, in words. Order matters: the first few found are named.
_WORDS: dict[str, str] = {
    "RPAR": "a closing ')'",
    "RSQB": "a closing ']'",
    "RBRACE": "a closing '}'",
    "VALUE": "a value",
    "STRING": "a quoted string",
    "REGEX": "a regex such as /pattern/i",
    "NUMBER": "a number",
    "NAME": "a field or function name",
    "LPAR": "'('",
    "LBRACE": "'{'",
    "LSQB": "'['",
    "COMPARE_OP": "an operator such as '=' or '!='",
    "MATCH_FN": "'=~'",
    "LINK": "'<=>'",
    "ASSIGN": "':='",
    "ARG_OP": "'='",
    "EXPR_COMPARE": "a comparison such as '==' or '>='",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "PIPE": "'|'",
    "STAR": "'*'",
    "GLOB": "a glob such as *.exe",
    "MINUS": "'-'",
    "BANG": "'!'",
    "NOT": "'not'",
    "AND": "'and'",
    "OR": "'or'",
    "CASE": "'case'",
    "MATCH": "'match'",
    "LIKE": "'like'",
    "PARAM": "a query parameter such as ?name",
    "SAVED": "a saved search such as $name()",
    "DURATION": "a time span such as 1h",
    "ADDRESS": "an address such as 10.0.0.0/8",
}

_VALUE_TERMINALS = {"VALUE", "STRING", "REGEX", "NUMBER", "NAME"}


def _found(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "the end of the query"
    text = str(token)
    if len(text) > 30:
        text = text[:27] + "..."
    return repr(text)


def _expected_words(expected: set[str], previous: Token | None) -> str:
    prev = str(previous) if previous is not None else ""
    if previous is not None and previous.type in {"COMPARE_OP", "ARG_OP"} and expected & _VALUE_TERMINALS:
        return f"a value after '{prev}'"
    if previous is not None and previous.type == "ASSIGN":
        return "an expression after ':='"
    if previous is not None and previous.type == "MATCH_FN":
        return "a function call after '=~'"
    for closer in ("RPAR", "RSQB", "RBRACE"):
        if closer in expected and not expected & _VALUE_TERMINALS:
            return _WORDS[closer]
    words = [w for t, w in _WORDS.items() if t in expected]
    unknown = sorted(t for t in expected if t not in _WORDS and not t.startswith("$"))
    words += [f"'{t}'" for t in unknown]
    if not words:
        return "nothing more here"
    if len(words) > 4:
        words = [*words[:4], "..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _end_span(text: str) -> Span:
    lines = text.splitlines() or [""]
    line = len(lines)
    column = len(lines[-1]) + 1
    return Span(line, column, line, column + 1)


def _syntax_error(error: lark.exceptions.UnexpectedInput, text: str) -> CqlSyntaxError:
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        previous = getattr(error, "token_history", None)
        prev = previous[-1] if previous else None
        at_end = token.type == "$END" or not token.line
        if at_end:
            span = _end_span(text)
            prev = prev or _last_operator(text)
        else:
            span = _token_span(token)
        expected = set(error.accepts or error.expected)
        after_operator = prev is not None and prev.type in {"COMPARE_OP", "ARG_OP", "ASSIGN", "MATCH_FN"}
        closer = _unclosed(text) if at_end else None
        if closer and not after_operator:
            message = f"expected {closer}, found the end of the query"
        elif str(token) == "/" and "REGEX" in expected:
            message = "unterminated regex: the closing '/' is missing"
        elif str(token) in {")", "]", "}"} and token.type not in expected and not after_operator:
            owed = _unclosed(text[:token.start_pos or 0])
            if owed == f"a closing '{token}'":  # it closes what is open, which is not complete yet
                message = f"expected {_expected_words(expected, prev)} before {str(token)!r}"
                if _CALL_COMPARED.search(text[:token.start_pos or 0]):  # x >= now(): read as x >= now, (...)
                    message += ("; a filter compares a field with a value: compare with a function's result in "
                                "test(), e.g. test(x >= now() - duration(1h))")
            else:
                message = (f"expected {owed}, found {str(token)!r}" if owed
                           else f"unexpected {str(token)!r}: nothing is open for it to close")
        else:
            message = f"expected {_expected_words(expected, prev)}, found {_found(token)}"
        return CqlSyntaxError(message, span, text)
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        line, column = error.line, error.column
        span = Span(line, column, line, column + 1)
        position = error.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        if char == '"':
            message = "unterminated string: the closing '\"' is missing"
        elif char == "/":
            message = "unterminated regex: the closing '/' is missing"
        else:
            allowed = set(error.allowed or ())
            prev_tokens = getattr(error, "token_history", None) or []
            prev = prev_tokens[-1] if prev_tokens else None
            message = f"unexpected character {char!r}"
            if allowed:
                message += f"; expected {_expected_words(allowed, prev)}"
        return CqlSyntaxError(message, span, text)
    if isinstance(error, lark.exceptions.UnexpectedEOF):
        return CqlSyntaxError("unexpected end of the query", _end_span(text), text)
    return CqlSyntaxError(str(error), A.NO_SPAN, text)


_OPERATORS = (("=~", "MATCH_FN"), (":=", "ASSIGN"), ("!=", "COMPARE_OP"), ("<=", "COMPARE_OP"),
              (">=", "COMPARE_OP"), ("=", "COMPARE_OP"), ("<", "COMPARE_OP"), (">", "COMPARE_OP"))


def _last_operator(text: str) -> Token | None:
    """The operator the text ends with, when Lark does not report the token before the end."""
    stripped = text.rstrip()
    for op, kind in _OPERATORS:
        if stripped.endswith(op):
            return Token(kind, op)
    return None


# A comparison whose right side is a call (``x >= now()``): filters compare with values only.
_CALL_COMPARED = re.compile(r"(?:[<>!=]=?)\s*[A-Za-z_][\w:]*\($")


def _unclosed(text: str) -> str | None:
    """The closer the text still owes at its end, ignoring strings, regexes and comments."""
    stack: list[str] = []
    pairs = {"(": "a closing ')'", "[": "a closing ']'", "{": "a closing '}'"}
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            index += 1
            while index < len(text) and text[index] != '"':
                index += 2 if text[index] == "\\" else 1
        elif text.startswith("//", index):
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
        elif text.startswith("/*", index):
            close = text.find("*/", index + 2)
            index = len(text) if close < 0 else close + 1
        elif char in pairs:
            stack.append(pairs[char])
        elif char in ")]}" and stack:
            stack.pop()
        index += 1
    return stack[-1] if stack else None
