"""Target profiles: how Falcon event types and fields are named in a target (``backends/*.yaml``).

A target is a language emitter plus a profile. The profile is data: which table, search or Sigma
logsource each Falcon event type becomes, each field's name there, its type and value transform,
the target's table schemas and regex dialect. Every profile is validated on load; an error names
the file, the line and the key. The format is documented in ``backends/README.md``.
"""

from __future__ import annotations

from dataclasses import field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqlx.ast import Span
from cqlx.cache import PROFILES, kept, rule_key
from cqlx.errors import ProfileError
from cqlx.frozen import Frozen, record
from cqlx.resources import data_dir

if TYPE_CHECKING:  # PyYAML is imported only to read a profile's YAML (~40 ms of a cold start)
    import yaml

LANGUAGES = ("kql", "spl", "sigma", "python")
REGEX_DIALECTS = ("re2", "pcre", "sigma", "python")
UNMAPPED_POLICIES = ("strict", "passthrough", "identity")
MISSING_FORMS = ("null", "empty")
# What a transform says about the target's value compared with Falcon's.
TRANSFORMS = {
    "basename": "the target holds the full path where Falcon holds the file name",
    "epoch_ms": "Falcon holds epoch milliseconds, the target a datetime",
    "splunk_time": "Splunk's _time (epoch seconds) stands for Falcon's epoch-millisecond timestamp",
    "drive_path": "the target writes a Windows path from the drive letter (C:\\...), Falcon from the volume's "
                  "device (\\Device\\HarddiskVolumeN\\...)",
}
KQL_TYPES = frozenset({"string", "long", "int", "real", "double", "bool", "boolean", "datetime", "timespan",
                       "guid", "dynamic", "decimal"})

_TOP_KEYS = {"name", "language", "title", "description", "regex", "unmapped", "missing", "tables",
             "fields", "event_types", "platforms", "extends", "default_event_type", "platform_lookup",
             "lookup_table", "unlisted_event_types", "repositories", "native_events"}
_NATIVE_KEYS = {"source", "product", "service", "id_field", "numeric", "events", "logsources"}
_PLATFORM_LOOKUP_KEYS = {"table", "key", "column"}
#: How a KQL target names the table a LogScale lookup file (``match(file="x.csv")``) becomes:
#: ``{name}`` is the file name without ``.csv``.
LOOKUP_TABLE_FORMS = ("{name}", "_GetWatchlist('{name}')")
_EVENT_KEYS = {"table", "search", "logsource", "datamodel", "prefix", "match", "fields", "note", "none", "lacks"}
# Every profile says what each of these becomes, or (none: reason) that it has no counterpart.
CORE_EVENT_TYPES = ("ProcessRollup2", "SyntheticProcessRollup2", "NetworkConnectIP4", "NetworkReceiveAcceptIP4",
                    "DnsRequest", "ClassifiedModuleLoad", "UserLogon", "NewExecutableWritten")
_FIELD_KEYS = {"name", "type", "transform", "exact", "note"}


@record
class FieldMap(Frozen):
    """How one Falcon field is named and shaped in the target."""

    name: str
    type: str = "string"
    transform: str | None = None
    exact: bool = True  # False: the target field is a stand-in, not the same information
    note: str = ""


@record
class EventType(Frozen):
    """How a Falcon event type is found in the target (table, search, logsource, data model) and how its
    fields are named there."""

    name: str
    table: str | None = None
    search: tuple[tuple[str, str], ...] = ()
    logsource: tuple[tuple[str, str], ...] = ()
    fields: dict[str, FieldMap] = field(default_factory=dict)
    note: str = ""
    datamodel: str | None = None  # SPL: a CIM data model and dataset, "Endpoint.Processes"
    prefix: str = ""  # SPL: what datamodel searches put before each field ("Processes.")
    # Records (python profiles): the field values that select this event type's records, each
    # field with the values any of which it may hold (ECS: event.category process, event.type start).
    match: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Made for an event type the profile does not list, from its unlisted_event_types: entry.
    unlisted: bool = False
    # Made from the profile's native_events: the target's own events, under the rule's names.
    native: bool = False
    # Events of this type the target's records leave out (a data model's constraint): a rule on
    # the type would miss them, which is reported as detection loss.
    lacks: str = ""


@record
class NativeEvents(Frozen):
    """The events a target's own field names identify (Sigma: Sysmon's, which its taxonomy keeps),
    for a rule that names no event type and reads those names, as a Sigma-to-LogScale converter
    writes a category Falcon has no event type for. ``events``: each event (Sysmon's event id)
    and the fields it carries; ``logsources``: each logsource category and the events it holds."""

    source: str  # what the events are, in words ("Sysmon")
    product: str
    events: dict[str, frozenset[str]]
    logsources: tuple[tuple[str, tuple[str, ...]], ...]
    id_field: str | None = None  # the field that holds the event's id (Windows: EventID), on every event
    service: str | None = None  # the logsource service that holds every one of the events (sysmon)
    numeric: frozenset[str] = frozenset()  # the fields that hold whole numbers

    def field_map(self, name: str) -> FieldMap:
        """How the target names and types a field of these events: as the rule does."""
        return FieldMap(name, "long" if name in self.numeric else "string")

    def carriers(self, fields: frozenset[str]) -> tuple[str, ...]:
        """The events that carry every one of ``fields``."""
        return tuple(e for e, carried in self.events.items() if fields <= carried)

    def logsource_of(self, events: tuple[str, ...]) -> str | None:
        """The logsource holding every one of ``events`` with the fewest others; None when none
        holds them all, or two hold them with as few others."""
        holding = sorted((len(held), name) for name, held in self.logsources if set(events) <= set(held))
        if not holding or (len(holding) > 1 and holding[0][0] == holding[1][0]):
            return None
        return holding[0][1]

    def describe(self, events: tuple[str, ...]) -> str:
        """The events, each with the smallest logsource holding it: "8 (create_remote_thread)"."""
        homes = [(e, self.logsource_of((e,))) for e in events]
        return ", ".join(f"{e} ({home})" if home else e for e, home in homes)

    def fields_of(self, logsource: str | None) -> frozenset[str]:
        """The fields the events of a logsource (None: of the service, every event) carry."""
        held = dict(self.logsources)[logsource] if logsource is not None else tuple(self.events)
        return frozenset().union(*(self.events[e] for e in held))


@record
class PlatformLookup(Frozen):
    """Where a KQL target keeps the OS platform when its event tables have no column for it: per
    device, in ``table`` (Defender: DeviceInfo), whose ``column`` (OSPlatform) starts with the
    profile's ``platforms:`` value, joined to the event tables on ``key`` (DeviceId)."""

    table: str
    key: str
    column: str


@record
class Profile(Frozen):
    """A target data model: its language, regex dialect, event types, tables and platforms
    (backends/README.md)."""

    name: str
    language: str
    title: str
    regex: str
    unmapped: str
    missing: str
    event_types: dict[str, EventType]
    tables: dict[str, tuple[tuple[str, str], ...]]
    platforms: dict[str, str]
    path: str
    default_event_type: str | None = None
    absent: dict[str, str] = field(default_factory=dict)  # event types without counterpart: why
    # The entry an event type the profile neither lists nor declares absent is read as, with its
    # own event_simpleName added to the search (raw FDR: every sensor event, one sourcetype).
    unlisted_event_type: str | None = None
    platform_lookup: PlatformLookup | None = None
    lookup_table: str = "{name}"  # one of LOOKUP_TABLE_FORMS
    # The LogScale repositories (#repo) whose events the profile's stand for (raw FDR: base_sensor).
    repositories: tuple[str, ...] = ()
    native: NativeEvents | None = None

    def event_type(self, name: str) -> EventType | None:
        """The mapping of a Falcon event type; None when the data model has no counterpart. The
        default (what a rule without event types reads) is never an event type of its own. A type
        the profile does not list is read as its ``unlisted_event_types:`` entry, if it has one."""
        if name == self.default_event_type:
            return None
        known = self.event_types.get(name)
        if known is not None or name in self.absent or self.unlisted_event_type is None:
            return known
        template = self.event_types.get(self.unlisted_event_type)
        if template is None:
            return None
        search = (*(p for p in template.search if p[0] != "event_simpleName"), ("event_simpleName", name))
        return replace(template, name=name, search=search, unlisted=True)

    def default_event(self) -> EventType | None:
        """What a rule that names no event type reads (``default_event_type:``), if anything."""
        return self.event_types.get(self.default_event_type) if self.default_event_type else None

    def absent_reason(self, name: str) -> str | None:
        """Why the profile has no counterpart for an event type it declares with ``none:``."""
        return self.absent.get(name)

    def field(self, event_type: EventType | None, name: str) -> FieldMap | None:
        """The mapping of Falcon field ``name`` (``#tag`` and ``tag`` alike) for ``event_type``."""
        if event_type is None:
            return None
        bare = name[1:] if name.startswith("#") else name
        return event_type.fields.get(name) or event_type.fields.get(bare)

    def columns(self, table: str) -> tuple[tuple[str, str], ...]:
        return self.tables.get(table, ())


# ---------------------------------------------------------------- YAML with line numbers


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping that remembers the line of every key (under ``__lines__``); a key twice is an error."""
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ProfileError(f"duplicate key {key!r}", Span(key_node.start_mark.line + 1,
                                                               key_node.start_mark.column + 1, 0, 0))
        result[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    result["__lines__"] = lines
    return result


@cache
def _line_loader() -> Any:
    """PyYAML's safe loader, with mappings that remember their keys' lines. LibYAML's parser (in
    PyYAML's wheels) reads a profile about ten times faster than the pure-Python one: it was most
    of a cold ``cqlx convert`` after the imports."""
    import yaml

    class LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        """SafeLoader that remembers the line of every mapping key."""

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return LineLoader


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__lines__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


class _Reader:
    """Validation with errors that name the file, line and key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, message: str, mapping: dict[str, Any] | None = None, key: str | None = None) -> ProfileError:
        line = 0
        if mapping is not None and key is not None:
            line = mapping.get("__lines__", {}).get(key, 0)
        error = ProfileError(message, Span(line, 1, line, 1))
        error.filename = self.path
        return error

    def keys(self, mapping: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in mapping:
            if key != "__lines__" and key not in allowed:
                raise self.fail(f"unknown key {key!r} in {where}; accepted: " + ", ".join(sorted(allowed)),
                                mapping, key)

    def mapping(self, parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = parent.get(key, {})
        if value is None:
            return {"__lines__": {}}
        if not isinstance(value, dict):
            raise self.fail(f"{where}.{key} must be a mapping", parent, key)
        return value

    def string(self, parent: dict[str, Any], key: str, where: str, choices: tuple[str, ...] = (),
               default: str | None = None) -> str:
        value = parent.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key} must be a non-empty string", parent, key)
        if choices and value not in choices:
            raise self.fail(f"{where}.{key} is {value!r}; accepted: " + ", ".join(choices), parent, key)
        return value


def _field_map(reader: _Reader, parent: dict[str, Any], key: str, where: str) -> FieldMap:
    value = parent[key]
    if isinstance(value, str):
        return FieldMap(value)
    if not isinstance(value, dict):
        raise reader.fail(f"field {key!r} in {where} must be a name or a mapping", parent, key)
    reader.keys(value, _FIELD_KEYS, f"field {key!r} of {where}")
    name = reader.string(value, "name", f"field {key!r} of {where}")
    transform = value.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        raise reader.fail(f"transform {transform!r} of field {key!r} does not exist; accepted: "
                          + ", ".join(TRANSFORMS), value, "transform")
    exact = value.get("exact", True)
    if not isinstance(exact, bool):
        raise reader.fail(f"exact of field {key!r} must be true or false", value, "exact")
    return FieldMap(name, str(value.get("type", "string")), transform, exact, str(value.get("note", "")))


def _fields(reader: _Reader, raw: dict[str, Any], where: str) -> dict[str, FieldMap]:
    fields: dict[str, FieldMap] = {}
    for key in raw:
        if key != "__lines__":
            fields[key] = _field_map(reader, raw, key, where)
    return fields


def _pairs(reader: _Reader, parent: dict[str, Any], key: str, where: str) -> tuple[tuple[str, str], ...]:
    raw = reader.mapping(parent, key, where)
    return tuple((str(k), str(v)) for k, v in raw.items() if k != "__lines__")


def _match(reader: _Reader, spec: dict[str, Any], where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    raw = reader.mapping(spec, "match", where)
    out: list[tuple[str, tuple[str, ...]]] = []
    for key, value in raw.items():
        if key == "__lines__":
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            raise reader.fail(f"match: {key} of {where} must be a value or a list of values", raw, key)
        out.append((str(key), tuple(str(v) for v in values)))
    return tuple(out)


def parse_profile(text: str, path: str, base: Profile | None = None) -> Profile:
    """Validate and build a profile from YAML text; ``base`` is the profile it ``extends``."""
    import yaml

    reader = _Reader(path)
    try:
        raw = yaml.load(text, Loader=_line_loader())
    except ProfileError as error:
        error.filename = path
        raise
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ProfileError(f"not valid YAML: {getattr(error, 'problem', error)}", Span(line, 1, line, 1),
                           filename=path) from None
    if not isinstance(raw, dict):
        raise ProfileError("a profile must be a YAML mapping", filename=path)
    reader.keys(raw, _TOP_KEYS, "the profile")
    where = "the profile"
    language = reader.string(raw, "language", where, LANGUAGES, base.language if base else None)
    tables_raw = reader.mapping(raw, "tables", where)
    tables: dict[str, tuple[tuple[str, str], ...]] = dict(base.tables) if base else {}
    for table, columns in tables_raw.items():
        if table == "__lines__":
            continue
        if not isinstance(columns, dict):
            raise reader.fail(f"table {table!r} must map column names to types", tables_raw, table)
        for column, kind in columns.items():
            if column != "__lines__" and (not isinstance(kind, str) or kind not in KQL_TYPES):
                raise reader.fail(f"column {column!r} of table {table!r} has type {kind!r}, which is not a "
                                  "KQL type; accepted: " + ", ".join(sorted(KQL_TYPES)), columns, column)
        tables[table] = tuple((str(c), str(k)) for c, k in columns.items() if c != "__lines__")
    shared = _fields(reader, reader.mapping(raw, "fields", where), "fields")
    events_raw = reader.mapping(raw, "event_types", where)
    events: dict[str, EventType] = dict(base.event_types) if base else {}
    absent: dict[str, str] = dict(base.absent) if base else {}
    for event_name, spec in events_raw.items():
        if event_name == "__lines__":
            continue
        ew = f"event type {event_name!r}"
        if not isinstance(spec, dict):
            raise reader.fail(f"{ew} must be a mapping", events_raw, event_name)
        reader.keys(spec, _EVENT_KEYS, ew)
        if "none" in spec:
            others = sorted(k for k in spec if k not in ("none", "note", "__lines__"))
            if others or not isinstance(spec["none"], str) or not spec["none"]:
                raise reader.fail(f"{ew}: none: gives the reason there is no counterpart, and nothing else "
                                  f"goes with it" + (f" (found {', '.join(others)})" if others else ""), spec, "none")
            absent[str(event_name)] = spec["none"]
            events.pop(str(event_name), None)
            continue
        inherited = events.get(event_name)
        fields = {**(inherited.fields if inherited else {}), **shared,
                  **_fields(reader, reader.mapping(spec, "fields", ew), ew)}
        table_name: str | None = spec.get("table", inherited.table if inherited else None)
        if table_name is not None and tables and table_name not in tables:
            raise reader.fail(f"{ew} names table {table_name!r}, which is not under tables:", spec, "table")
        datamodel = spec.get("datamodel", inherited.datamodel if inherited else None)
        if datamodel is not None and (not isinstance(datamodel, str) or datamodel.count(".") != 1):
            raise reader.fail(f"{ew}: datamodel must be written Model.Dataset (Endpoint.Processes)", spec,
                              "datamodel")
        events[event_name] = EventType(
            str(event_name), table_name,
            _pairs(reader, spec, "search", ew) or (inherited.search if inherited else ()),
            _pairs(reader, spec, "logsource", ew) or (inherited.logsource if inherited else ()),
            fields, str(spec.get("note", inherited.note if inherited else "")),
            datamodel, str(spec.get("prefix", inherited.prefix if inherited else "")),
            _match(reader, spec, ew) or (inherited.match if inherited else ()),
            lacks=str(spec.get("lacks", inherited.lacks if inherited else "")))
    if shared and base is not None:
        for event_name, event in list(events.items()):
            if event_name not in events_raw:
                events[event_name] = replace(event, fields={**event.fields, **shared})
    if not events:
        raise reader.fail("a profile needs at least one entry under event_types:", raw, "event_types")
    missing = [t for t in CORE_EVENT_TYPES if t not in events and t not in absent]
    if missing:
        raise reader.fail(f"event types {', '.join(missing)} are missing: say what each becomes, or that it "
                          "has no counterpart with none: REASON", raw, "event_types")
    for event in events.values():
        if language == "kql" and event.table is None:
            raise reader.fail(f"event type {event.name!r} needs a table: for a KQL profile", raw, "event_types")
        if language == "kql" and event.table is not None and event.table in tables:
            names = {c for c, _ in tables[event.table]}
            for falcon, mapped in event.fields.items():
                if mapped.name not in names:
                    raw_spec = events_raw.get(event.name)
                    spec_map: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
                    raw_fields = spec_map.get("fields") if isinstance(spec_map.get("fields"), dict) else None
                    where_map, where_key = (raw_fields, falcon) if raw_fields and falcon in raw_fields \
                        else (events_raw, event.name)
                    raise reader.fail(f"field {falcon!r} of event type {event.name!r} maps to {mapped.name!r}, "
                                      f"which is not a column of {event.table}", where_map, where_key)
    platforms = {**(base.platforms if base else {}), **dict(_pairs(reader, raw, "platforms", where))}
    platform_lookup = _platform_lookup(reader, raw, tables, events, base)
    lookup_table = reader.string(raw, "lookup_table", where, LOOKUP_TABLE_FORMS,
                                 base.lookup_table if base else "{name}")
    default_event = raw.get("default_event_type", base.default_event_type if base else None)
    unlisted = raw.get("unlisted_event_types", base.unlisted_event_type if base else None)
    if unlisted is not None and str(unlisted) not in events:
        raise reader.fail(f"unlisted_event_types names {unlisted!r}, which is not under event_types:", raw,
                          "unlisted_event_types")
    repositories = raw.get("repositories", list(base.repositories) if base else [])
    if not isinstance(repositories, list) or not all(isinstance(r, str) and r for r in repositories):
        raise reader.fail("repositories must be a list of LogScale repository names", raw, "repositories")
    return Profile(
        name=reader.string(raw, "name", where, default=Path(path).stem),
        language=language,
        title=str(raw.get("title", base.title if base else "")),
        regex=reader.string(raw, "regex", where, REGEX_DIALECTS, base.regex if base else "python"),
        unmapped=reader.string(raw, "unmapped", where, UNMAPPED_POLICIES,
                               base.unmapped if base else "passthrough"),
        missing=reader.string(raw, "missing", where, MISSING_FORMS, base.missing if base else "null"),
        event_types=events,
        tables=tables,
        platforms=platforms,
        path=path,
        default_event_type=str(default_event) if default_event else None,
        absent=absent,
        unlisted_event_type=str(unlisted) if unlisted is not None else None,
        platform_lookup=platform_lookup,
        lookup_table=lookup_table,
        repositories=tuple(repositories),
        native=_native_events(reader, raw, language) if "native_events" in raw else base.native if base else None,
    )


def _native_events(reader: _Reader, raw: dict[str, Any], language: str) -> NativeEvents:
    """``native_events: {source, product, events: {id: [field, ...]}, logsources: {name: [id, ...]}}``
    (Sigma profiles): every logsource's events must be listed under ``events:``."""
    where = "native_events"
    if language != "sigma":
        raise reader.fail(f"{where} names Sigma logsources: only a sigma profile has it", raw, where)
    spec = reader.mapping(raw, where, "the profile")
    reader.keys(spec, _NATIVE_KEYS, where)
    events_raw = reader.mapping(spec, "events", where)
    events: dict[str, frozenset[str]] = {}
    for event, fields in events_raw.items():
        if event == "__lines__":
            continue
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise reader.fail(f"{where}.events.{event} must be a list of field names", events_raw, event)
        events[str(event)] = frozenset(fields)
    logsources_raw = reader.mapping(spec, "logsources", where)
    logsources: list[tuple[str, tuple[str, ...]]] = []
    for name, held in logsources_raw.items():
        if name == "__lines__":
            continue
        ids = [str(e) for e in held] if isinstance(held, list) else []
        unknown = [e for e in ids if e not in events]
        if not ids or unknown:
            raise reader.fail(f"{where}.logsources.{name} must list events named under {where}.events"
                              + (f" (not there: {', '.join(unknown)})" if unknown else ""), logsources_raw, name)
        logsources.append((str(name), tuple(ids)))
    if not logsources:
        raise reader.fail(f"{where} needs at least one entry under logsources:", spec, "logsources")
    id_field = reader.string(spec, "id_field", where) if "id_field" in spec else None
    numeric = spec.get("numeric", [])
    if not isinstance(numeric, list) or not all(isinstance(f, str) and f for f in numeric):
        raise reader.fail(f"{where}.numeric must be a list of field names", spec, "numeric")
    if id_field is not None:
        events = {e: fields | {id_field} for e, fields in events.items()}
    service = reader.string(spec, "service", where) if "service" in spec else None
    return NativeEvents(reader.string(spec, "source", where), reader.string(spec, "product", where), events,
                        tuple(logsources), id_field, service, frozenset(numeric))


def _platform_lookup(reader: _Reader, raw: dict[str, Any], tables: dict[str, tuple[tuple[str, str], ...]],
                     events: dict[str, EventType], base: Profile | None) -> PlatformLookup | None:
    """``platform_lookup: {table, key, column}``: the table must be under ``tables:`` with both
    columns, and every event type's table must have the key column too."""
    if "platform_lookup" not in raw:
        return base.platform_lookup if base else None
    spec = reader.mapping(raw, "platform_lookup", "the profile")
    where = "platform_lookup"
    reader.keys(spec, _PLATFORM_LOOKUP_KEYS, where)
    table, key, column = (reader.string(spec, k, where) for k in ("table", "key", "column"))
    if table not in tables:
        raise reader.fail(f"{where}.table names {table!r}, which is not under tables:", spec, "table")
    names = {c for c, _ in tables[table]}
    for name, role in ((key, "key"), (column, "column")):
        if name not in names:
            raise reader.fail(f"{where}.{role} {name!r} is not a column of {table}", spec, role)
    for event in events.values():
        if event.table is not None and event.table in tables and key not in {c for c, _ in tables[event.table]}:
            raise reader.fail(f"{where}.key {key!r} is not a column of {event.table} (event type {event.name}), "
                              "so its rows cannot be joined to their device", spec, "key")
    return PlatformLookup(table, key, column)


def shipped_profiles() -> list[str]:
    """Names of the profiles in ``backends/``."""
    return sorted(p.stem for p in data_dir("backends").glob("*.yaml"))


@cache
def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a profile file by path (which may ``extends:`` a shipped one)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile file {name_or_path} does not exist")
    else:
        path = data_dir("backends") / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProfileError(f"unknown profile {name_or_path!r}; shipped: " + ", ".join(shipped_profiles()))
    text = path.read_text(encoding="utf-8")
    # Kept between processes (cqlx.cache): cqlx's own files, the shipped profiles among them, are
    # part of every key, so a profile that extends a shipped one is read again when that changes.
    return kept(rule_key("profile", str(path.resolve()), text), Profile, lambda: _read_profile(path, text), PROFILES)


def _read_profile(path: Path, text: str) -> Profile:
    import yaml

    head = None
    if "extends" in text:  # the key cannot be written without its name: no other profile is read twice
        try:
            head = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            head = None
    base = None
    if isinstance(head, dict) and head.get("extends"):
        parent = str(head["extends"])
        if parent == path.stem and path.parent == data_dir("backends"):
            raise ProfileError(f"profile {parent!r} extends itself", filename=str(path))
        base = load_profile(parent)
    return parse_profile(text, str(path), base)


DEFAULT_PROFILE = {"kql": "mde", "spl": "splunk", "sigma": "sigma", "python": "falcon"}
