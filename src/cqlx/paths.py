"""Windows paths in two forms: which tests on a full path read the same in both.

Falcon writes a Windows path from the volume's device: ``\\Device\\HarddiskVolume3\\Windows\\
System32\\cmd.exe`` (SEMANTICS.md, the field table). Defender's ``FolderPath``, Sysmon's ``Image``
(the Sigma taxonomy) and ASIM's ``TargetProcessName`` write it from the drive letter:
``C:\\Windows\\System32\\cmd.exe``. Which volume is which letter is not in the event. A profile
marks such a column with ``transform: drive_path``; a test on it converts exactly only when it
does not look at the part before the first folder. This module decides that, conservatively: a
test it cannot show to be blind to the prefix is reported (detection loss), never passed silently.

A test is taken as blind to the prefix when it is not anchored at the start, names no device,
volume or drive, and gives the same answer (and, for an extraction, the same captures) on each of
a set of paths written both ways: common ones, and paths made of the pattern's own words at the
root of the volume, under it and deeper (where a pattern that counts folders, or a group that can
take in the device, shows a difference). An extraction may also start with the idiom public Falcon
content uses to skip the device, ``(\\\\Device\\\\HarddiskVolume\\d+)?``, followed by a backslash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cqlx import ir
from cqlx.passes import leading_conjuncts, pred_fields
from cqlx.regexes import python_error, python_flags, sre_constants, sre_parse, to_python, tokens

if TYPE_CHECKING:
    from cqlx.profiles import FieldMap

#: The profile transform of a column that holds Windows paths from the drive letter.
DRIVE_PATH = "drive_path"

#: The two forms of the start of a Windows path, paired: Falcon's and the drive letter's.
_PREFIXES = (("\\Device\\HarddiskVolume3", "C:"), ("\\Device\\HarddiskVolume12", "D:"))
#: What follows the prefix in the paths both forms are compared on (shallow and deep, with the
#: folders detection content names most).
_RESTS = ("\\a.exe", "\\Temp\\b.exe", "\\Windows\\System32\\cmd.exe", "\\Windows\\SysWOW64\\rundll32.exe",
          "\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
          "\\Users\\alice\\AppData\\Local\\Temp\\x.dll", "\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
          "\\ProgramData\\svc\\svc.exe")

#: ``(\\Device\\HarddiskVolume\d+)?`` (or ``(?:...)``, ``[0-9]``): an optional device prefix.
_DEVICE_IDIOM = re.compile(r"\((?:\?:)?\\\\Device\\\\HarddiskVolume(?:\\d|\[0-9\])[+*]?\)\?")
#: Text of a pattern or value that names the start of a path in one form.
#: (The device is a folder named Device, not ``\\DeviceCensus.exe``; a drive is a letter, a class
#: or a dot before ``:\\``; ``(?:`` and ``(?i:`` are groups.)
_MARKER = re.compile(r"harddiskvolume|\\device\\|(?<![?\w])[a-z]:\\|(?<![?\w]):\\\\", re.IGNORECASE)
#: A value that is a whole Windows path in either form.
_ABSOLUTE = re.compile(r"\\|[A-Za-z]:")


def message(field: str, column: str, profile: str, why: str) -> str:
    """The detection loss of a test on ``field``, which the profile maps to ``column``."""
    return (f"{field} holds Windows paths from the volume's device (\\Device\\HarddiskVolumeN\\...), {column} "
            f"in profile {profile} from the drive letter (C:\\...), and which volume is which letter is not "
            f"in the event: {why}")


def loss(pred: ir.Pred) -> str | None:
    """Why a test on a full-path column does not read the same in both forms; None when it does."""
    if isinstance(pred, ir.Eq):
        return _value_loss(pred.value, "an equality with a full Windows path")
    if isinstance(pred, ir.Glob):
        return _glob_loss(pred.pattern)
    if isinstance(pred, ir.In):
        return next((why for why in map(_glob_loss, pred.values) if why), None)
    if isinstance(pred, ir.Regex):
        return _regex_loss(pred.pattern, pred.flags, extract=False)
    if isinstance(pred, ir.ExprTest):
        return "a test() expression on the path (its length and text differ with the prefix)"
    return None


def extract_loss(pattern: str, flags: str) -> str | None:
    """Why the named groups a regex captures from a full-path column may differ between the two
    forms; None when they cannot."""
    return _regex_loss(pattern, flags, extract=True)


def _value_loss(value: str, what: str) -> str | None:
    return f"{what} reads the start of the path" if _ABSOLUTE.match(value) else None


def _glob_loss(pattern: str) -> str | None:
    if pattern.startswith("*"):
        return "a wildcard that names the device, volume or drive" if _MARKER.search(pattern) else None
    return _value_loss(pattern, "a wildcard pattern anchored at the start of the path")


@lru_cache(maxsize=2048)  # a library repeats its patterns; each is tried on some hundred paths
def _regex_loss(pattern: str, flags: str, extract: bool) -> str | None:
    rest = pattern
    idiom = _DEVICE_IDIOM.match(pattern)
    if idiom is not None:
        rest = pattern[idiom.end():]
        first = next((t for t in tokens(rest) if t.kind != "group_open"), None)
        if first is None or first.text != "\\\\":
            return "a regex whose device prefix is not followed by a backslash"
    elif _anchored(pattern):
        return "a regex anchored at the start of the path"
    if _MARKER.search(rest):
        return "a regex that names the device, volume or drive"
    source = to_python(pattern)
    options = python_flags(flags)
    if python_error(source, options) is not None:
        return None  # reported as a regex that does not compile
    compiled = re.compile(source, options)
    words = _words(pattern)[:8]
    # the paths compared: the fixed ones, and the pattern's own words at the root, under a folder
    # and in the middle (a file or folder the rule names is where a difference would show)
    rests = [*_RESTS, *(r for w in words for r in (f"\\{w}", f"\\{w}\\x.exe", f"\\Windows\\{w}",
                                                      f"\\Users\\a\\{w}\\b"))]
    pairs = [(falcon + rest, drive + rest) for falcon, drive in _PREFIXES for rest in rests]
    for falcon, drive in pairs:
        one, other = compiled.search(falcon), compiled.search(drive)
        if (one is None) != (other is None):
            return f"a regex that reads {falcon!r} and {drive!r} differently"
        if extract and one is not None and other is not None and one.groupdict() != other.groupdict():
            return f"a regex that captures differently from {falcon!r} and {drive!r}"
    return None


def _words(pattern: str) -> list[str]:
    """The runs of plain text in a pattern (``evil.exe`` of ``\\\\evil\\.exe$``), two characters or
    more, as a path would hold them: a separator, a class or any operator ends a run."""
    words: list[str] = []
    run = ""
    for token in tokens(pattern):
        char = None
        if token.kind == "literal" and token.text not in ".^$|":
            char = token.text
        elif token.kind == "escape" and len(token.text) == 2 and not token.text[1].isalnum() and token.text[1] != "\\":
            char = token.text[1]
        if char is not None:
            run += char
            continue
        if token.kind == "quantifier":
            run = run[:-1]  # the character it repeats may be absent or repeated
        if len(run) > 1 and run not in words:
            words.append(run)
        run = ""
    if len(run) > 1 and run not in words:
        words.append(run)
    return words


def _anchored(pattern: str) -> bool:
    """Whether the pattern has a start anchor (``^`` or ``\\A``) outside a character class that a
    Windows path could follow: one followed by a ``/`` reads a Unix path, written the same way in
    both (``^/usr/bin/base64$``)."""
    parsed = tokens(pattern)
    for index, token in enumerate(parsed):
        if (token.kind, token.text) in (("literal", "^"), ("escape", "\\A")):
            after = parsed[index + 1].text if index + 1 < len(parsed) else ""
            if after not in ("/", "\\/"):
                return True
    return False


def unix_only(pred: ir.Pred) -> bool:
    """Whether every value the test holds for contains a ``/``, which no Windows path does (the
    seed's ``ImageFileName=/\\/(docker|kubectl)$/i``): the field is then a Unix path, written the
    same way in both forms."""
    if isinstance(pred, ir.Eq):
        return "/" in pred.value
    if isinstance(pred, ir.Glob):
        return "/" in pred.pattern
    if isinstance(pred, ir.In):
        return all("/" in value for value in pred.values)
    if isinstance(pred, ir.Regex):
        return _requires_slash(pred.pattern, pred.flags)
    return False


def drive_fields(fields: Mapping[str, FieldMap]) -> frozenset[str]:
    """The Falcon fields an event type's mapping holds as Windows paths from the drive letter."""
    return frozenset(name for name, mapped in fields.items() if mapped.transform == DRIVE_PATH)


def unix_fields(query: ir.Query, guarded: frozenset[str]) -> frozenset[str]:
    """The fields a leading filter of ``query`` requires to hold a ``/`` (:func:`unix_only`):
    Unix paths, which every target writes as Falcon does, so they are neither checked nor noted.
    ``guarded``: the fields whose writing ends the leading filters (:func:`leading_conjuncts`)."""
    found: set[str] = set()

    def note(conjunct: ir.Pred) -> bool:
        if unix_only(conjunct):
            found.update(pred_fields(conjunct))
        return True

    leading_conjuncts(query.steps, guarded, note)
    return frozenset(found)


@lru_cache(maxsize=1024)
def _requires_slash(pattern: str, flags: str) -> bool:
    try:
        parsed = sre_parse.parse(to_python(pattern), python_flags(flags))
    except (re.error, OverflowError, RecursionError, ValueError):
        return False
    return _requires(parsed, ord("/"))


def _requires(items: Any, char: int) -> bool:
    """Whether every match of the parsed pattern ``items`` holds the character."""
    c = sre_constants
    for op, argument in (items.data if hasattr(items, "data") else items):
        if op is c.LITERAL and argument == char:
            return True
        if op is c.SUBPATTERN and _requires(argument[3], char):
            return True
        if op is c.BRANCH and all(_requires(branch, char) for branch in argument[1]):
            return True
        if op in (c.MAX_REPEAT, c.MIN_REPEAT) and argument[0] >= 1 and _requires(argument[2], char):
            return True
    return False


def windows(platforms: tuple[str, ...]) -> bool:
    """Whether a rule selecting these Falcon platforms (none: any) may read Windows paths."""
    return not platforms or any(p.casefold() == "win" for p in platforms)
