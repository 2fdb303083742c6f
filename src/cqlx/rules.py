"""Rule files: a plain ``.cql`` query, a rule card ``.yml``, or a LogScale package YAML.

A rule card holds ``title, id, description, author, date, mitre, references, falsepositives,
query`` (and later ``tests``). A LogScale package (saved query or alert) holds ``name,
description, queryString``. Errors in the query point at the line and column *in the file*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cqlx import ir
from cqlx.ast import Span
from cqlx.emit.base import RuleMeta
from cqlx.errors import CqlError, RuleFileError

RULE_SUFFIXES = (".cql", ".yml", ".yaml")
_CARD_KEYS = {"title", "id", "description", "author", "date", "modified", "status", "mitre", "references",
              "falsepositives", "query", "tags", "tests", "fields", "level", "name", "queryString",
              "$schema", "timeFrame", "type", "version", "search", "throttleTimeSeconds", "throttleField",
              "actionNames", "labels", "enabled", "triggerMode", "queryTimestampType", "displayName"}


@dataclass(frozen=True)
class Rule:
    path: str
    text: str  # the query
    meta: RuleMeta
    line_offset: int = 0  # lines before the query in its file
    column_offset: int = 0  # indentation of the query's block in its file
    card: dict[str, Any] = field(default_factory=dict)

    def parse(self) -> ir.Query:
        """The rule's IR; errors carry the file name and the position in the file."""
        from cqlx.api import parse

        try:
            return parse(self.text)
        except CqlError as error:
            raise self.relocate(error) from None

    def location(self, span: Span) -> str:
        """``path:line:column`` of a span of the query, in the rule file."""
        if not span.line:
            return self.path
        return f"{self.path}:{span.line + self.line_offset}:{span.column + self.column_offset}"

    def relocate(self, error: CqlError) -> CqlError:
        """Point an error at the rule file (a card's query starts further down the file)."""
        span = error.span
        if span.line and (self.line_offset or self.column_offset):
            error.span = Span(span.line + self.line_offset, span.column + self.column_offset,
                              span.end_line + self.line_offset, span.end_column + self.column_offset)
        file = Path(self.path)
        error.source = file.read_text(encoding="utf-8") if file.is_file() else self.text
        error.filename = self.path
        return error


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return (str(value),)


def _mitre(card: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    mitre = card.get("mitre") or {}
    techniques: list[str] = []
    tactics: list[str] = []
    if isinstance(mitre, dict):
        techniques += _strings(mitre.get("techniques") or mitre.get("technique"))
        tactics += _strings(mitre.get("tactics") or mitre.get("tactic"))
    elif isinstance(mitre, list):
        for item in mitre:
            if isinstance(item, dict):
                techniques += _strings(item.get("technique") or item.get("techniques"))
                tactics += _strings(item.get("tactic") or item.get("tactics"))
            else:
                techniques += _strings(item)
    for tag in _strings(card.get("tags")):
        lowered = tag.lower()
        if lowered.startswith("attack.t") and lowered[8:9].isdigit():
            techniques.append(tag[7:].upper())
    return tuple(dict.fromkeys(t.strip().upper() for t in techniques)), tuple(dict.fromkeys(tactics))


def _query_position(text: str, key: str) -> tuple[int, int]:
    """Lines before, and the indentation of, the value of top-level ``key`` in YAML ``text``."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 0, 0
    if not isinstance(node, yaml.MappingNode):
        return 0, 0
    for key_node, value_node in node.value:
        if getattr(key_node, "value", None) == key and isinstance(value_node, yaml.ScalarNode):
            if value_node.style in ("|", ">"):
                lines = text.splitlines()
                first = value_node.start_mark.line + 1
                while first < len(lines) and not lines[first].strip():
                    first += 1
                indent = len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
                return first, indent
            return value_node.start_mark.line, value_node.start_mark.column + (1 if value_node.style else 0)
    return 0, 0


def load_rule(path: str | Path) -> Rule:
    """Read one rule file (``.cql``, a rule card or a LogScale package YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(f"{path}: no such rule file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError(f"{path}: cannot read the rule file ({error})") from None
    if path.suffix not in (".yml", ".yaml"):  # .cql, .txt, no suffix: the file is the query
        return Rule(str(path), text, RuleMeta(title=path.stem))
    try:
        card = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise RuleFileError(f"not valid YAML: {getattr(error, 'problem', error)}", Span(line, 1, line, 2),
                            text, str(path)) from None
    if not isinstance(card, dict):
        raise RuleFileError("a rule card must be a YAML mapping with a query", filename=str(path))
    key = "query" if "query" in card else "queryString" if "queryString" in card else None
    if key is None and isinstance(card.get("search"), dict):  # LogScale alert packages nest the query
        card = {**card, "queryString": card["search"].get("queryString")}
        key = "queryString"
    if key is None or not isinstance(card.get(key), str):
        raise RuleFileError("the rule card has no query: (or LogScale queryString:)", filename=str(path))
    line_offset, column_offset = _query_position(text, key)
    techniques, tactics = _mitre(card)
    meta = RuleMeta(
        title=str(card.get("title") or card.get("name") or card.get("displayName") or path.stem),
        id=str(card.get("id") or ""),
        description=str(card.get("description") or ""),
        author=str(card.get("author") or ""),
        date=str(card.get("date") or ""),
        status=str(card.get("status") or ""),
        references=_strings(card.get("references")),
        falsepositives=_strings(card.get("falsepositives")),
        techniques=techniques,
        tactics=tactics,
        tags=_strings(card.get("tags")),
    )
    return Rule(str(path), card[key], meta, line_offset, column_offset, card)


def find_rules(paths: list[str]) -> list[Path]:
    """The rule files named, with directories searched recursively (sorted, deterministic)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
                            and not p.name.startswith("."))
        else:
            found.append(path)
    return found
