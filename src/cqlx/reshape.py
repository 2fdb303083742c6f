"""Falcon events re-shaped into a profile's tables or field names, so that the same events can be
run through every target: Defender rows for duckdb-kql, Sigma-named records for pySigma's sqlite
backend. The profile's mapping is applied in reverse, with its value transforms.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cqlx.profiles import EventType, Profile

EVENT_TYPE_KEYS = ("#event_simpleName", "event_simpleName")


def event_type_of(event: Mapping[str, Any]) -> str | None:
    for key in EVENT_TYPE_KEYS:
        value = event.get(key)
        if isinstance(value, str):
            return value
    return None


def _lookup(event: Mapping[str, Any], name: str) -> Any:
    value = event.get(name)
    if value is None and name.startswith("#"):
        value = event.get(name[1:])
    return value


def _epoch_ms(value: Any) -> dt.datetime | None:
    try:
        millis = int(str(value).strip())
    except ValueError:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC).replace(tzinfo=None)


_DEVICE = re.compile(r"\\Device\\HarddiskVolume(\d+)(\\.*)\Z", re.IGNORECASE | re.DOTALL)


def basename_path(name: str) -> str:
    """The full path a target that reads a file name from a path holds for an event with the file
    name alone (Falcon's ``FileName`` without ``ImageFileName``): the name after a ``/``."""
    return name if "/" in name or "\\" in name else "/" + name


def _convert(value: Any, kind: str, transform: str | None) -> Any:
    if transform == "epoch_ms":
        return _epoch_ms(value)
    if transform == "splunk_time":  # Splunk's _time is epoch seconds
        try:
            return int(str(value).strip()) / 1000
        except ValueError:
            return None
    if transform == "drive_path" and isinstance(value, str):
        # Falcon's \Device\HarddiskVolumeN\... as the drive letter's form: volume N is the Nth
        # letter here (3 is C:), a stand-in for the mapping the event does not carry.
        device = _DEVICE.match(value)
        if device is not None and 1 <= int(device.group(1)) <= 26:
            return chr(ord("A") + int(device.group(1)) - 1) + ":" + device.group(2)
        return value
    if transform == "basename" and isinstance(value, str):
        return basename_path(value)
    if kind in ("long", "int"):
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    if kind in ("real", "double"):
        try:
            return float(str(value).strip())
        except ValueError:
            return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None  # lists and objects have no string column to go in


def _reshape(event: Mapping[str, Any], event_type: EventType, types: Mapping[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    # Exact mappings first: a column a derived field also maps to (FileName → the path's end) is
    # the full field's own (ImageFileName), when the event has it, under either name.
    ordered = sorted(event_type.fields.items(), key=lambda item: item[1].transform == "basename")
    for falcon, mapped in ordered:
        value = _lookup(event, falcon)
        if value is None or mapped.name in row:
            continue
        if mapped.transform == "basename" and _lookup(event, mapped.name) is not None:
            continue
        converted = _convert(value, types.get(mapped.name, mapped.type), mapped.transform)
        if converted is not None:
            row[mapped.name] = converted
    return row


def to_tables(events: Iterable[Mapping[str, Any]], profile: Profile
              ) -> dict[str, tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]]:
    """The events as rows of the profile's tables (KQL profiles): each event goes to the table of
    its event type, with the profile's columns; absent string columns hold ``""`` when the
    profile says ``missing: empty`` (as Defender does). With a ``platform_lookup`` (Defender's
    DeviceInfo), each device (``aid``) with an ``event_platform`` gets a row there saying it."""
    tables: dict[str, tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]] = {
        table: (columns, []) for table, columns in profile.tables.items()
    }
    device_table = profile.platform_lookup.table if profile.platform_lookup else ""
    for event in events:
        name = event_type_of(event)
        event_type = profile.event_type(name) if name else None
        if event_type is None or event_type.table is None:
            continue
        columns = profile.columns(event_type.table)
        types = dict(columns)
        row = _reshape(event, event_type, types)
        for column, values in event_type.match:  # what marks this event type's rows in the table
            row.setdefault(column, values[0])
        if profile.missing == "empty":
            for column, kind in columns:
                if kind == "string":
                    row.setdefault(column, "")
        tables[event_type.table][1].append(row)
        device = _device_row(event, row, profile)
        if device is not None and device not in tables[device_table][1]:
            tables[device_table][1].append(device)
    return tables


PLATFORM_KEYS = ("event_platform", "#event_platform")


def _device_row(event: Mapping[str, Any], row: Mapping[str, Any], profile: Profile) -> dict[str, Any] | None:
    """The row of the profile's ``platform_lookup`` table (Defender: DeviceInfo) that says which
    platform the event's device runs: its key (DeviceId, from the event's ``aid``) and, as the
    platform column, the profile's value for the event's ``event_platform`` (the prefix itself:
    ``Windows`` starts with ``Windows``, as Windows10 does)."""
    lookup = profile.platform_lookup
    if lookup is None or not row.get(lookup.key):
        return None
    platform = next((event[k] for k in PLATFORM_KEYS if isinstance(event.get(k), str)), None)
    if platform not in profile.platforms:
        return None
    device: dict[str, Any] = {lookup.key: row[lookup.key], lookup.column: profile.platforms[platform]}
    if profile.missing == "empty":
        for column, kind in profile.columns(lookup.table):
            if kind == "string":
                device.setdefault(column, "")
    return device


def _where(event_type: EventType) -> tuple[Any, ...]:
    return (event_type.table, event_type.logsource, event_type.search, event_type.datamodel)


def to_records(events: Iterable[Mapping[str, Any]], profile: Profile, like: Iterable[str] = (),
               typeless: EventType | None = None, passthrough: bool = False) -> list[dict[str, Any] | None]:
    """The events under the profile's field names (Sigma, ECS, Splunk), one per input event; None
    for an event whose type the profile does not map (it belongs to no logsource). Under
    ``unmapped: identity`` (raw FDR in Splunk) every other field keeps its Falcon name, tags without
    their ``#``; with ``passthrough``, so do they under ``unmapped: passthrough`` (Sigma), as the
    conversion passes them through (``cqlx test`` checks what the conversion claims). With ``like``
    (event type names), only events that land where those do (the same table, logsource or search)
    are kept: the others are not in the data the rule reads. ``typeless``: what an event that names
    no type is read as (a rule in Sysmon's names reads Sysmon's events as they are)."""
    targets = {_where(e) for e in (profile.event_type(n) for n in like) if e is not None}
    out: list[dict[str, Any] | None] = []
    for event in events:
        name = event_type_of(event)
        event_type = profile.event_type(name) if name else typeless
        if event_type is None and not targets:
            # A rule without event types reads every event the default search holds (raw FDR:
            # every sensor event, the types the profile does not list too, and an event that
            # names no type, such as a witness of a rule that names none).
            event_type = profile.default_event()
        if event_type is None or (targets and _where(event_type) not in targets):
            out.append(None)
            continue
        record = _reshape(event, event_type, {})
        for column, values in event_type.match:
            record.setdefault(column, values[0])
        if profile.unmapped == "identity" or (passthrough and profile.unmapped == "passthrough"):
            mapped = set(event_type.fields)
            for key, value in event.items():
                bare = key[1:] if key.startswith("#") and profile.unmapped == "identity" else key
                if key not in mapped and bare not in mapped and bare not in record and value is not None:
                    record[bare] = value
        out.append(record)
    return out
