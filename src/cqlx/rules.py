"""Rule files: a plain ``.cql`` query, a rule card ``.yml``, or a LogScale package YAML.

A rule card holds ``title, id, description, author, date, mitre, references, falsepositives,
query`` (and later ``tests``). A LogScale package asset holds its query as ``queryString``: at the
top of a saved search, a scheduled search, a filter or aggregate alert (``name, description,
queryString``), under ``query:`` (or ``search:``) in an alert, and in each widget of a dashboard.
A file may hold several queries: a dashboard's widgets, several YAML documents (``---``), or a
list of cards; each is a :class:`Rule` of its own. Package assets without a query (the manifest,
parsers, actions, lookup files) are not rules (:class:`NoQueryError`). Errors in a query point
at the line and column *in the file*.
"""

from __future__ import annotations

import sys
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqlx import ir
from cqlx.ast import Span
from cqlx.emit.base import RuleMeta
from cqlx.errors import CqlError, RuleFileError
from cqlx.frozen import Frozen, record
from cqlx.options import ParseOptions

if TYPE_CHECKING:  # PyYAML is imported only to read a YAML file (its import is ~40 ms of a cold start)
    import yaml

RULE_SUFFIXES = (".cql", ".yml", ".yaml")
_CARD_KEYS = {"title", "id", "description", "author", "date", "modified", "status", "mitre", "references",
              "falsepositives", "query", "tags", "tests", "fields", "level", "name", "queryString",
              "$schema", "timeFrame", "type", "version", "search", "throttleTimeSeconds", "throttleField",
              "actionNames", "labels", "enabled", "triggerMode", "queryTimestampType", "displayName"}
_HUMIO_SCHEMA = "schemas.humio.com/"

Path_ = tuple[str | int, ...]  # keys and list indexes from a YAML document's root to a query


class NoQueryError(RuleFileError):
    """A YAML file that is a LogScale package asset without a query (manifest, parser, action, lookup
    file): not a rule. A directory walk skips it."""


@record
class Rule(Frozen):
    """One query and what its file says about it."""

    path: str
    text: str  # the query
    meta: RuleMeta
    line_offset: int = 0  # lines before the query in its file
    column_offset: int = 0  # indentation of the query's block in its file
    card: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # in a file with several queries: the query's own name (a widget's title, a card's name)
    index: int = 0  # in a file with several queries: its position, from 1 (0: the file holds one)
    options: ParseOptions = field(default_factory=ParseOptions)  # --param, --saved-searches

    def parse(self) -> ir.Query:
        """The rule's IR (with its :class:`ParseOptions`); errors carry the file name and the
        position in the file."""
        from cqlx.api import parse

        try:
            return parse(self.text, self.options.param_values, self.options.saved)
        except CqlError as error:
            raise self.relocate(error) from None

    def parse_kept(self) -> ir.Query:
        """:meth:`parse`, with the IR kept between processes (:mod:`cqlx.cache`, as ``cqlx run``
        keeps its compiled rules): converting a rule again imports no Lark and parses nothing."""
        from cqlx import cache

        return cache.kept(cache.rule_key("ir", self.text, repr(self.options)), ir.Query, self.parse)

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


def _node_at(node: yaml.Node | None, path: Path_) -> yaml.Node | None:
    """The node ``path`` leads to from a composed YAML document (None when it leads nowhere)."""
    import yaml

    for step in path:
        if isinstance(step, int):
            if not isinstance(node, yaml.SequenceNode) or step >= len(node.value):
                return None
            node = node.value[step]
        else:
            if not isinstance(node, yaml.MappingNode):
                return None
            node = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
    return node


def _position(text: str, node: yaml.Node | None) -> tuple[int, int]:
    """Lines before, and the indentation of, a scalar's text in the YAML file ``text``."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        return 0, 0
    if node.style in ("|", ">"):
        lines = text.splitlines()
        first = node.start_mark.line + 1
        while first < len(lines) and not lines[first].strip():
            first += 1
        indent = len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
        return first, indent
    return node.start_mark.line, node.start_mark.column + (1 if node.style else 0)


def _documents(path: Path, text: str) -> list[tuple[yaml.Node, Any]]:
    """Every YAML document of the file: its node tree (for positions) and its data."""
    import yaml

    documents: list[tuple[yaml.Node, Any]] = []
    loader: Any = None
    try:
        # The reader checks the characters as it is made: a control character fails here already.
        # LibYAML's loader when PyYAML has it (the pure-Python one was most of a cold start's YAML
        # time); both keep each node's line and column.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                documents.append((node, loader.construct_document(node)))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        position = getattr(error, "position", None)  # a ReaderError: a character YAML does not allow
        line = mark.line + 1 if mark is not None else text.count("\n", 0, position) + 1 if position is not None else 0
        raise RuleFileError(f"not valid YAML: {getattr(error, 'problem', None) or error}", Span(line, 1, line, 2),
                            text, str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()
    return documents


def _card_query(card: dict[str, Any]) -> Path_ | None:
    """Where a card or package asset keeps its query, or None."""
    if isinstance(card.get("query"), str):
        return ("query",)
    if "queryString" in card:
        return ("queryString",)
    for key in ("query", "search"):  # an alert nests its query: query: {queryString: ...}
        if isinstance(card.get(key), dict) and "queryString" in card[key]:
            return (key, "queryString")
    return None


def _asset_kind(card: dict[str, Any], path: Path) -> str:
    """What a LogScale package asset is (``parser``, ``dashboard``), from its ``$schema`` URL; empty
    when the YAML is not one."""
    schema = str(card.get("$schema") or "")
    if _HUMIO_SCHEMA in schema:
        return schema.split(_HUMIO_SCHEMA, 1)[1].split("/", 1)[0] or "asset"
    return "manifest" if path.stem == "manifest" else ""


def _meta(card: dict[str, Any], title: str, description: Any = None) -> RuleMeta:
    techniques, tactics = _mitre(card)
    return RuleMeta(
        title=title,
        id=str(card.get("id") or ""),
        description=str(description if description is not None else card.get("description") or ""),
        author=str(card.get("author") or ""),
        date=str(card.get("date") or ""),
        status=str(card.get("status") or ""),
        references=_strings(card.get("references")),
        falsepositives=_strings(card.get("falsepositives")),
        techniques=techniques,
        tactics=tactics,
        tags=_strings(card.get("tags")),
    )


@record
class _Found(Frozen):
    """A query found in a YAML document, before it becomes a :class:`Rule`."""

    card: dict[str, Any]
    text: str
    node: yaml.Node  # the document's root
    where: Path_  # from the document's root to the query
    title: str
    name: str = ""
    description: Any = None


def _title(card: dict[str, Any], fallback: str) -> str:
    return str(card.get("title") or card.get("name") or card.get("displayName") or fallback)


def _queries(path: Path, node: yaml.Node, data: Any) -> list[_Found]:
    """The queries of one YAML document."""
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):  # a list of cards
        found = []
        for index, item in enumerate(data):
            where = _card_query(item)
            text = _value(item, where) if where is not None else None
            if where is None or not isinstance(text, str):
                raise RuleFileError(f"item {index + 1} of the list has no query: (or LogScale queryString:)",
                                    filename=str(path))
            found.append(_Found(item, text, node, (index, *where), _title(item, f"{path.stem} {index + 1}"),
                                _title(item, str(index + 1))))
        return found
    if not isinstance(data, dict):
        raise RuleFileError("a rule card must be a YAML mapping with a query", filename=str(path))
    where = _card_query(data)
    if where is not None:
        text = _value(data, where)
        if not isinstance(text, str):
            raise RuleFileError("the rule card has no query: (or LogScale queryString:)", filename=str(path))
        return [_Found(data, text, node, where, _title(data, path.stem), _title(data, ""))]
    widgets = data.get("widgets")
    if isinstance(widgets, dict):  # a LogScale dashboard: a query per widget (text widgets have none)
        board = _title(data, path.stem)
        found = []
        for key, widget in widgets.items():
            if isinstance(widget, dict) and isinstance(widget.get("queryString"), str):
                name = str(widget.get("title") or key)
                found.append(_Found(data, widget["queryString"], node, ("widgets", key, "queryString"),
                                    f"{board}: {name}", name,
                                    widget.get("description") or data.get("description") or ""))
        if found:
            return found
    kind = _asset_kind(data, path)
    if kind:
        raise NoQueryError(f"a LogScale package {kind} holds no query: not a rule", filename=str(path))
    raise RuleFileError("the rule card has no query: (or LogScale queryString:)", filename=str(path))


def _value(data: Any, where: Path_) -> Any:
    for step in where:
        data = data[step]
    return data


def load_rules(path: str | Path, options: ParseOptions | None = None, kept: bool = False) -> tuple[Rule, ...]:
    """Every query of one rule file: one for a ``.cql`` file or a card, one per widget of a
    LogScale dashboard, per YAML document, per card of a list. A package asset without a query
    raises :class:`NoQueryError`; anything unreadable a :class:`RuleFileError` (a :class:`CqlError`).
    Each rule is parsed with ``options`` (query parameters, saved searches). ``kept``: what a YAML
    file holds is kept between processes (:mod:`cqlx.cache`, keyed by its path and text), for the
    commands that read one rule file again and again (a pre-commit hook, ``cqlx run``)."""
    rules = _load_rules(Path(path), kept)
    return rules if options is None else tuple(replace(rule, options=options) for rule in rules)


#: The rule "file" that is the standard input: one query, read as a .cql file is.
STDIN = "-"


def _load_rules(path: Path, kept: bool) -> tuple[Rule, ...]:
    if str(path) == STDIN:
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as error:
            raise RuleFileError(f"cannot read the query from the standard input ({error})") from None
        return (Rule("<stdin>", text, RuleMeta(title="stdin")),)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(f"{path}: no such rule file") from None
    except IsADirectoryError:
        raise RuleFileError(f"{path}: is a directory, not a rule file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError(f"{path}: cannot read the rule file ({error})") from None
    if path.suffix not in (".yml", ".yaml"):  # .cql, .txt, no suffix: the file is the query
        return (Rule(str(path), text, RuleMeta(title=path.stem)),)
    if kept:
        from cqlx import cache

        return cache.kept(cache.rule_key("rule file", str(path), text), tuple, lambda: _yaml_rules(path, text))
    return _yaml_rules(path, text)


def _yaml_rules(path: Path, text: str) -> tuple[Rule, ...]:
    """The queries of a YAML rule file: cards, lists of cards, LogScale package assets."""
    documents = [(node, data) for node, data in _documents(path, text) if data is not None]
    if not documents:
        raise RuleFileError("the rule card has no query: (or LogScale queryString:)", filename=str(path))
    found = [query for node, data in documents for query in _queries(path, node, data)]
    several = len(found) > 1
    rules = []
    for number, query in enumerate(found, start=1):
        line_offset, column_offset = _position(text, _node_at(query.node, query.where))
        rules.append(Rule(str(path), query.text, _meta(query.card, query.title, query.description), line_offset,
                          column_offset, query.card, query.name if several else "", number if several else 0))
    return tuple(rules)


def load_rule(path: str | Path, options: ParseOptions | None = None, kept: bool = False) -> Rule:
    """Read a rule file that holds one query (``.cql``, a rule card or a LogScale package YAML);
    ``kept`` as for :func:`load_rules`."""
    rules = load_rules(path, options, kept)
    if len(rules) > 1:
        names = ", ".join(repr(r.name) for r in rules[:5]) + (", ..." if len(rules) > 5 else "")
        raise RuleFileError(f"the file holds {len(rules)} queries ({names}); this command takes one rule "
                            "(cqlx convert, check and coverage take them all)", filename=str(path))
    return rules[0]


def find_rules(paths: list[str]) -> list[Path]:
    """The rule files named, with directories searched recursively (sorted, deterministic)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            found.append(path)
    return found
