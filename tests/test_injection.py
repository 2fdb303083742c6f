"""Injection (issue 8): a hostile literal reaches every target as exactly itself.

Each value is put in a rule as a tested value, a computed value and a field name; each output is
read back with the target's own reader and the literal compared: Kusto.Language's tokens (and the
KQL run on duckdb-kql), PyYAML and pySigma for Sigma, Python's ``ast`` for the matcher module (then
run, with no side effect), the CQL parser for ``--to cql``, and the SPL oracle (no Splunk runs
here) for SPL. A target may refuse a value it cannot hold (a control character in a KQL string)
with a CqlError; it may never write a different one. The values are generated, not listed, so
the set is new on every run; a fixed set of classics runs too."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cqlx
from cqlx import ir
from cqlx.errors import CqlError
from tests.conftest import require_kusto

P = "#event_simpleName=ProcessRollup2 | "
CLASSICS = ['") or true or ("', "' or '1'='1", "| delete", "`id`", "$(touch /tmp/x)", "${jndi:x}",
            "__import__('os').system('id')", "\\", "\\\\", '\\"', "a\\", "@\"x", "''", "\n| where true",
            "\u2028", "\u0085", "\ufeff", "\u202e", "😀", "\x00", "%n", "{{7*7}}", "];", "'])", "*/"]
# Characters that mean something to some target, and ordinary ones.
ALPHABET = st.sampled_from([*"\"'\\|;`$(){}[]@#*?/%=~!<>,.: \n\r\t\x00\x0b\u0085\u2028éK\u212a😀", "ab", "or"])
VALUES = st.lists(ALPHABET, min_size=1, max_size=8).map("".join)


def cql_string(value: str) -> str:
    """A CQL quoted string for ``value`` (``\\`` and ``"`` escaped; LogScale strings hold the
    rest as they are)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rules(value: str) -> dict[str, str]:
    literal = cql_string(value.replace("*", ""))  # a * in a quoted value is a glob: tested elsewhere
    return {
        "tested": P + f"CommandLine = {literal}",
        "computed": P + f"x := {literal} | select([x])",
        "name": P + f"{literal} := 1 | select([{literal}])",
    }


def _convert(text: str, target: str) -> str | None:
    try:
        return cqlx.convert(text, to=target)
    except CqlError:
        return None  # refused, precisely: allowed


def _sigma_values(output: str) -> list[str]:
    """The values of the first rule's detection items as pySigma reads them (escapes resolved;
    a wildcard would show as a non-text part)."""
    from sigma.collection import SigmaCollection

    rule = SigmaCollection.from_yaml(output)[0]
    values = []
    for detection in rule.detection.detections.values():
        for item in detection.detection_items:
            for value in item.value:
                values.append("".join(p if isinstance(p, str) else f"<{p}>" for p in value.s))
    return values


def _check_all(values: list[str]) -> list[str]:
    from cqlx.engines.kusto_language import string_literals

    wrong: list[str] = []
    kql_outputs: list[tuple[str, str, str]] = []
    for value in values:
        plain = value.replace("*", "")
        for kind, text in _rules(value).items():
            try:
                query = cqlx.parse(text)
            except CqlError:
                continue  # an empty field name, say: refused at parse time
            # CQL: the canonical output parses back to the same literal.
            cql = _convert(text, "cql")
            if cql is not None and cqlx.parse(cql).steps != query.steps:
                wrong.append(f"cql {kind} {value!r}: {cql!r}")
            kql = _convert(text, "kql")
            if kql is not None:
                kql_outputs.append((value, kind, kql))
            sigma = _convert(text, "sigma") if kind == "tested" else None
            if sigma is not None:
                tested = _sigma_values(sigma)
                if tested != [plain]:
                    wrong.append(f"sigma {value!r}: pySigma reads {tested!r}")
            python = _convert(text, "python")
            if python is not None:
                constants = {n.value for n in ast.walk(ast.parse(python)) if isinstance(n, ast.Constant)}
                if plain not in constants:
                    wrong.append(f"python {kind} {value!r}: the literal is not a constant of the module")
    if kql_outputs:
        for (value, kind, kql), literals in zip(kql_outputs, string_literals([k for _, _, k in kql_outputs]),
                                                strict=True):
            plain = value.replace("*", "")
            if kind == "name" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", plain) and f"extend {plain} = " in kql:
                continue  # a plain identifier is written bare
            if plain not in literals:
                wrong.append(f"kql {kind} {value!r}: Kusto.Language reads {literals!r} in {kql!r}")
    return wrong


def test_classic_injections_read_back_exactly() -> None:
    require_kusto()
    assert not _check_all(CLASSICS)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(VALUES, min_size=8, max_size=8))
def test_generated_hostile_literals_read_back_exactly(values: list[str]) -> None:
    require_kusto()
    assert not _check_all(values)


@settings(max_examples=40, deadline=None)
@given(VALUES)
def test_hostile_values_select_themselves_in_the_spl_oracle_and_matcher(value: str) -> None:
    """Executed: ``CommandLine = "<value>"`` keeps the event holding that value and no other, in the
    matcher and in the SPL the oracle runs (SPL's documented semantics)."""
    from cqlx.profiles import load_profile
    from cqlx.reshape import to_records
    from cqlx.spl_oracle import run_spl

    value = value.replace("*", "")
    text = P + f"CommandLine = {cql_string(value)}"
    events = [{"#event_simpleName": "ProcessRollup2", "aid": name, "CommandLine": cmd}
              for name, cmd in (("hit", value), ("longer", value + "x"), ("inside", f"x{value}y"))]
    matcher = cqlx.compile_matcher(text)
    assert [e["aid"] for e in events if matcher.match(e)] == ["hit"]
    spl = _convert(text, "spl")
    if spl is None:
        return
    records = [{**r, "sourcetype": "crowdstrike:events:sensor"} for r in to_records(events, load_profile("splunk"))
               if r is not None]
    assert [str(r.get("aid")) for r in run_spl(spl, records)] == ["hit"], spl


def test_a_hostile_rule_runs_without_side_effects(tmp_path: Path) -> None:
    """The literal that would create a file if it were ever code, in every place a literal goes;
    the matcher runs in process and as the saved module: the file never appears."""
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    q = cql_string(payload)
    text = (P + f"CommandLine = {q} or CommandLine = /{payload.replace('/', chr(92) + '/')}/ "
            f"| {q} := {q} | x := if(CommandLine = {q}, then={q}, else={q}) | select([{q}, x, CommandLine])")
    event = {"#event_simpleName": "ProcessRollup2", "CommandLine": payload}
    row = cqlx.compile_matcher(text).match(event)
    assert row == {payload: payload, "x": payload, "CommandLine": payload}
    module = tmp_path / "rule.py"
    module.write_text(cqlx.convert(text, to="python"), encoding="utf-8")
    code = f"import importlib.util, json; spec = importlib.util.spec_from_file_location('r', {str(module)!r}); " \
           "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); " \
           f"print(json.dumps(m.match({event!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_the_kql_reader_sees_escapes() -> None:
    """The Kusto.Language literal reader itself: escapes in both string forms, and names."""
    require_kusto()
    from cqlx.engines.kusto_language import string_literals

    kql = 'T | where a == "x\\ny" and b == @"c:\\d""q" | extend [\'a\\nb\'] = 1'
    assert string_literals([kql]) == [["x\ny", 'c:\\d"q', "a\nb"]]
    assert isinstance(ir.Eq("a", "b"), ir.Eq)
