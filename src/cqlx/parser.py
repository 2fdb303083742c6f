"""Text → AST: the Lark parser for ``grammar/cql.lark`` and errors a person can act on.

Syntax errors name the line and column, show the line with a caret, and say in words what was
expected ("a value after '='", "a closing ')'") rather than Lark's terminal names.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import lark
from lark import Token, Transformer, v_args

from cqlx import ast as A
from cqlx.ast import Span
from cqlx.errors import CqlError, CqlSyntaxError
from cqlx.resources import data_path

REGEX_FLAGS = frozenset("imdgF")

# Nesting deeper than this is not a detection query; refuse it before Python's stack does.
MAX_NESTING = 200
#: The longest query read, in characters: real detection queries are a few KB; a query past this is
#: refused up front rather than parsed for minutes (issue 8, limits on query size).
MAX_QUERY_LENGTH = 1_000_000


_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual", "propagate_positions": True,
                            "maybe_placeholders": False}


@cache
def _parser() -> lark.Lark:
    return load_parser(data_path("grammar", "cql.lark").read_text(encoding="utf-8"), cache_dir())


def cache_dir() -> Path | None:
    """Where the LALR tables are kept: ``$XDG_CACHE_HOME/cqlx`` (``~/.cache/cqlx``), created
    private to the user. None, so the tables are built in memory each time, when it cannot be
    created or is not the user's own private directory (a file there is unpickled: no other user
    may be able to write it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "cqlx"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
    except OSError:
        return None
    if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
        return None
    return directory


def load_parser(grammar: str, directory: Path | None) -> lark.Lark:
    """The LALR parser of ``grammar``: its tables read from ``directory`` when an earlier run
    saved them for this grammar text, these options, this Lark and this Python (the file's name is
    their hash, so a changed grammar is never read from an old file), else built and saved there.
    A file that cannot be written (read-only, full) or read (damaged) only costs the build."""
    key = "\0".join([grammar, repr(sorted(_OPTIONS.items())), lark.__version__, sys.version])
    path = None if directory is None else directory / f"cql-{hashlib.sha256(key.encode()).hexdigest()[:32]}.lark"
    if path is not None:
        try:
            with path.open("rb") as handle:
                loaded: lark.Lark = lark.Lark.load(handle)
            return loaded
        except Exception:  # missing, or damaged: build the tables again
            pass
    parser = lark.Lark(grammar, **_OPTIONS)
    if path is not None:
        _save(parser, path)
    return parser


def _save(parser: lark.Lark, path: Path) -> None:
    """Write the tables under a temporary name, then rename: a reader never sees half a file."""
    temporary = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".tmp-", delete=False) as handle:
            temporary = handle.name
            parser.save(handle)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def parse(text: str) -> A.Pipeline:
    """Parse a CQL query into its syntax tree; raises :class:`CqlSyntaxError` on bad input."""
    if len(text) > MAX_QUERY_LENGTH:
        raise CqlSyntaxError(f"the query is {len(text):,} characters long; cqlx reads queries of up to "
                             f"{MAX_QUERY_LENGTH:,}", source=None)
    _check_nesting(text)
    try:
        tree = _parser().parse(text)
        result: A.Pipeline = _ToAst().transform(tree)
    except lark.exceptions.VisitError as error:
        if isinstance(error.orig_exc, CqlError):
            raise error.orig_exc.located(text) from None
        if isinstance(error.orig_exc, RecursionError):  # a chain of hundreds of operators, on a deep stack
            raise CqlSyntaxError("the query is nested too deeply (chains of hundreds of operators); split it "
                                 "into pipeline stages", source=text) from None
        raise
    except lark.exceptions.UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return result


def _check_nesting(text: str) -> None:
    depth = 0
    in_string = False
    escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "([{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, index) + 1
                column = index - (text.rfind("\n", 0, index) + 1) + 1
                raise CqlSyntaxError(f"nesting deeper than {MAX_NESTING} levels",
                                     Span(line, column, line, column + 1), text)
        elif char in ")]}":
            depth = max(0, depth - 1)


# ---------------------------------------------------------------- tree → AST


def _token_span(token: Token) -> Span:
    return Span(token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)


def _meta_span(meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return A.NO_SPAN
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


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


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """One line per grammar rule: the tree is already shaped by the grammar."""

    def start(self, meta: Any, c: list[Any]) -> A.Pipeline:
        return c[0] if c else A.Pipeline(_meta_span(meta), ())

    def pipeline(self, meta: Any, c: list[Any]) -> A.Pipeline:
        return A.Pipeline(_meta_span(meta), tuple(c))

    def assignment(self, meta: Any, c: list[Any]) -> A.Assignment:
        return A.Assignment(_meta_span(meta), _field(c[0]), c[2])

    def case_stmt(self, meta: Any, c: list[Any]) -> A.CaseStmt:
        return A.CaseStmt(_meta_span(meta), tuple(c[1:]))

    def case_branch(self, meta: Any, c: list[Any]) -> A.Pipeline:
        result: A.Pipeline = c[0]
        return result

    def match_stmt(self, meta: Any, c: list[Any]) -> A.MatchStmt:
        return A.MatchStmt(_meta_span(meta), _field(c[0]), tuple(c[2:]))

    def match_branch(self, meta: Any, c: list[Any]) -> A.MatchBranch:
        return A.MatchBranch(_meta_span(meta), c[0], c[1])

    def and_filter(self, meta: Any, c: list[Any]) -> A.AndFilter:
        left, right = _nodes(c)
        return A.AndFilter(_meta_span(meta), left, right)

    def or_filter(self, meta: Any, c: list[Any]) -> A.OrFilter:
        left, right = _nodes(c)
        return A.OrFilter(_meta_span(meta), left, right)

    def not_filter(self, meta: Any, c: list[Any]) -> A.NotFilter:
        return A.NotFilter(_meta_span(meta), c[1])

    def match_all(self, meta: Any, c: list[Any]) -> A.MatchAll:
        return A.MatchAll(_meta_span(meta))

    def comparison(self, meta: Any, c: list[Any]) -> A.Comparison:
        return A.Comparison(_meta_span(meta), _field(c[0]), str(c[1]), c[2])

    def param_compare(self, meta: Any, c: list[Any]) -> A.Comparison:
        return A.Comparison(_meta_span(meta), _field(c[0]), str(c[1]), _param(c[2]))

    def param(self, meta: Any, c: list[Any]) -> A.Param:
        return _param(c[0])

    def param_filter(self, meta: Any, c: list[Any]) -> A.ParamFilter:
        return A.ParamFilter(_meta_span(meta), _param(c[0]))

    def not_fn_compare(self, meta: Any, c: list[Any]) -> A.NotFilter:
        return A.NotFilter(_meta_span(meta), A.FnCompare(_meta_span(meta), _field(c[0]), c[3]))

    def named_query(self, meta: Any, c: list[Any]) -> A.Argument:
        return A.Argument(_meta_span(meta), str(c[0]), c[1])

    def fn_compare(self, meta: Any, c: list[Any]) -> A.FnCompare:
        return A.FnCompare(_meta_span(meta), _field(c[0]), c[2])

    def free_text(self, meta: Any, c: list[Any]) -> A.FreeText:
        token: Token = c[0]
        if token.type == "NAME":
            return A.FreeText(_meta_span(meta), A.FieldRef(_token_span(token), str(token)))
        return A.FreeText(_meta_span(meta), self._literal(token))

    def value(self, meta: Any, c: list[Any]) -> A.StringLit | A.RegexLit | A.BareValue:
        token: Token = c[0]
        if token.type == "VALUE":
            return A.BareValue(_token_span(token), str(token))
        return self._literal(token)

    @staticmethod
    def _literal(token: Token) -> A.StringLit | A.RegexLit:
        if token.type == "REGEX":
            return _regex(token)
        return A.StringLit(_token_span(token), unescape_string(token))

    def call(self, meta: Any, c: list[Any]) -> A.Call:
        return A.Call(_meta_span(meta), str(c[0]), _token_span(c[0]), tuple(c[1:]))

    def positional(self, meta: Any, c: list[Any]) -> A.Argument:
        return A.Argument(_meta_span(meta), None, _leaf(c[0]))

    def named(self, meta: Any, c: list[Any]) -> A.Argument:
        return A.Argument(_meta_span(meta), str(c[0]), _leaf(c[2]))

    def array(self, meta: Any, c: list[Any]) -> A.Array:
        return A.Array(_meta_span(meta), tuple(_leaf(item) for item in c))

    def subquery(self, meta: Any, c: list[Any]) -> A.SubQuery:
        return A.SubQuery(_meta_span(meta), c[0])

    def binary(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary(_meta_span(meta), str(c[1]), c[0], c[2])

    def unary(self, meta: Any, c: list[Any]) -> A.Unary:
        return A.Unary(_meta_span(meta), str(c[0]), c[1])

    def number(self, meta: Any, c: list[Any]) -> A.Number:
        return A.Number(_token_span(c[0]), str(c[0]))

    def string(self, meta: Any, c: list[Any]) -> A.StringLit:
        return A.StringLit(_token_span(c[0]), unescape_string(c[0]))

    def field_ref(self, meta: Any, c: list[Any]) -> A.FieldRef:
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
