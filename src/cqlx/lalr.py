"""One loop that scans and parses a query with Lark's own tables: Lark's answer, for less work.

A parse with Lark runs, per token, a generator of the contextual lexer and a method of its parser
state, and a callback per reduction, including the ``?rule`` reductions that only hand their one
child up (Lark's ``ExpandSingleChild``: a query of 90 tokens makes about 70 of them). This module
drives the same LALR tables, the same per-state scanners (:mod:`cqlx.lexing`), keyword folding and
rule callbacks (the embedded transformer of :mod:`cqlx.parser`) in one loop, where a single-child
reduction only moves the state and each token's line and column are counted where it is cut.

It answers only for queries Lark accepts. At the first character no scanner of the state reads,
or the first token the table has no action for, it gives up (:class:`Unparsed`) and the caller
parses with Lark itself, whose exceptions carry the position, the expected terminals and the
parser state that :mod:`cqlx.parser` turns into its message. tests/test_lexing.py checks that
both give the same AST, or the same error, over the samples, lexical traps and generated and
mutated queries. :func:`driver` gives None (Lark alone is used) when Lark's internals are not the
ones this was written against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lark
from lark import Token

# Internal to Lark (pyproject pins lark>=1.2,<2, which has both); driver() checks the rest of the shape.
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift


class Unparsed(Exception):
    """The query is not one Lark accepts: parse it with Lark for the error."""


#: A reduction: the rule's length, its name (for the goto) and its callback; None for a rule of
#: one symbol whose callback hands that child up unchanged.
Reduction = tuple[int, str, Callable[[list[Any]], Any] | None]
#: A scanner's state: ``match(text, pos)``, the terminals skipped, those that may hold a newline,
#: and the keyword folds (a NAME that spells a keyword becomes the keyword's token).
_Scan = tuple[Any, frozenset[str], frozenset[str], dict[str, Any]]


class Driver:
    """Parses with the tables, scanners and callbacks of one Lark LALR parser (contextual lexer)."""

    def __init__(self, parser: lark.Lark, start: str = "start") -> None:
        frontend = parser.parser
        lalr = frontend.parser.parser
        table = lalr.parse_table
        self.callbacks = lalr.callbacks
        self.start = table.start_states[start]
        self.end = table.end_states[start]
        # Per state: terminal or rule name -> (Shift, next state) or (Reduce, rule), Lark's own.
        self.states: dict[Any, dict[str, tuple[Any, Any]]] = table.states
        self.reductions: dict[Any, Reduction] = {}  # made as rules are first reduced
        self.lexers = frontend.lexer.lexers
        self.scans: dict[Any, _Scan] = {}  # built as states are met, as Lark builds its scanners

    def reduction(self, rule: Any) -> Reduction:
        callback = self.callbacks[rule]
        size = len(rule.expansion)
        handed_up = isinstance(callback, ExpandSingleChild) and size == 1
        made = self.reductions[rule] = (size, rule.origin.name, None if handed_up else callback)
        return made

    def scan(self, state: Any) -> _Scan:
        lexer = self.lexers[state]
        scanner = lexer.scanner  # built first: it sets the lexer's keyword folds (callback)
        found = self.scans[state] = (scanner, frozenset(lexer.ignore_types), frozenset(lexer.newline_types),
                                     dict(lexer.callback))
        return found

    def parse(self, text: str) -> Any:
        """The value of the start rule's callback for ``text``; :class:`Unparsed` where Lark would
        raise a syntax error (the callbacks' own exceptions pass through)."""
        states, reductions, scans, final = self.states, self.reductions, self.scans, self.end
        stack = [self.start]
        values: list[Any] = []
        pos, line, line_start, end = 0, 1, 0, len(text)
        token: Token | None = None
        kind = ""
        while kind != "$END":
            if pos < end:
                scanner, ignore, newlines, folds = scans.get(stack[-1]) or self.scan(stack[-1])
                found = scanner.match(text, pos)
                if found is None:
                    raise Unparsed
                value, kind = found
                stop, end_line, end_start = pos + len(value), line, line_start
                if kind in newlines and "\n" in value:
                    end_line += value.count("\n")
                    end_start = pos + value.rindex("\n") + 1
                if kind in ignore:
                    pos, line, line_start = stop, end_line, end_start
                    continue
                token = Token(kind, value, pos, line, pos - line_start + 1, end_line, stop - end_start + 1, stop)
                if kind in folds:
                    token = folds[kind](token)
                    kind = token.type
                pos, line, line_start = stop, end_line, end_start
            else:
                token = Token.new_borrow_pos("$END", "", token) if token is not None else Token("$END", "", 0, 1, 1)
                kind = "$END"
            while True:  # reduce until the token shifts
                action = states[stack[-1]].get(kind)
                if action is None:
                    raise Unparsed
                if action[0] is Shift:
                    stack.append(action[1])
                    values.append(token)
                    break
                size, name, callback = reductions.get(action[1]) or self.reduction(action[1])
                if callback is None:  # one child, handed up: only the state changes
                    del stack[-1]
                else:
                    if size:
                        children = values[-size:]
                        del stack[-size:]
                        del values[-size:]
                    else:
                        children = []
                    values.append(callback(children))
                goto = states[stack[-1]][name][1]
                if goto == final:
                    return values[-1]
                stack.append(goto)
        raise Unparsed  # pragma: no cover - $END completes the start rule or has no action


def driver(parser: lark.Lark) -> Driver | None:
    """The driver of ``parser``, or None when this Lark is not shaped as expected (or calls back on
    terminals, which the driver does not do)."""
    try:
        callbacks = parser.parser.parser.parser.callbacks
        if any(isinstance(key, str) for key in callbacks):
            return None
        made = Driver(parser)
        made.scan(made.start)
    except (AttributeError, KeyError, TypeError):  # pragma: no cover - another Lark
        return None
    return made
