"""SPL: a table of CQL → SPL, and the seed's golden output, reviewed against Splunk's documented
semantics (no offline Splunk exists to run it)."""

from __future__ import annotations

import pytest

from cqlx import convert
from cqlx.errors import UnsupportedError
from tests.golden import check_golden

P = "#event_simpleName=ProcessRollup2 | "
HEAD = 'sourcetype="crowdstrike:events:sensor" event_simpleName=CASE(ProcessRollup2)\n'

TABLE = [
    # where is case-sensitive (search reference: where), so equality stays exact
    ("CommandLine = whoami", '| where CommandLine=="whoami"'),
    ("CommandLine = /who/i", '| regex CommandLine="(?i)who"'),
    ("CommandLine = /who/", '| regex CommandLine="who"'),
    ("CommandLine = /a\\.b/", '| regex CommandLine="a\\\\.b"'),
    ('CommandLine = /say "hi"/', '| regex CommandLine="say \\"hi\\""'),
    # a negation must stay true for events without the field
    ("CommandLine != /who/", '| where (isnull(CommandLine) OR NOT match(CommandLine, "who"))'),
    ("CommandLine != whoami", '| where (isnull(CommandLine) OR NOT CommandLine=="whoami")'),
    ("CommandLine = *", "| where isnotnull(CommandLine)"),
    ("CommandLine != *", "| where NOT isnotnull(CommandLine)"),
    ("CommandLine = *who*", '| where match(CommandLine, "(?s)^.*who.*\\\\z")'),
    ("RawProcessId > 100", "| where tonumber(RawProcessId)>100"),
    ('in(ParentBaseFileName, values=["bash", "sh"])', '| where in(ParentBaseFileName, "bash", "sh")'),
    ("UserName = root", None),  # raw FDR has only the user's SID: refused, not silently wrong
    ("a = 1 or b = 2", '| where (a=="1" OR b=="2")'),
    ("not (a = 1 or b = 2)", '| where ((isnull(a) OR NOT a=="1") AND (isnull(b) OR NOT b=="2"))'),
    ("x := lower(CommandLine)", "| eval x=coalesce(lower(CommandLine), x)"),  # := keeps x when null
    ("sort(x, limit=5)", "| sort 5 -num(x)"),
    ("sort(x, order=asc, type=string)", "| sort 200 +str(x)"),
    ("select([timestamp, ComputerName])", "| table _time aid_computer_name"),
]


@pytest.mark.parametrize(("cql", "spl"), TABLE)
def test_spl_table(cql: str, spl: str | None) -> None:
    if spl is None:
        with pytest.raises(UnsupportedError, match="UserSid, which is not the same information"):
            convert(P + cql, to="spl")
        return
    assert convert(P + cql, to="spl") == HEAD + spl + "\n"


def test_seed_golden(seed_text: str) -> None:
    check_golden("seed.spl", convert(seed_text, to="spl"))


def test_seed_spl_keeps_case_and_limits(seed_text: str) -> None:
    out = convert(seed_text, to="spl")
    assert out.startswith(HEAD)
    assert '| eval HostMount=if(match(CommandLine, "(-v /:/host' in out  # case-sensitive: no (?i)
    assert out.count("(?i)") == 6
    assert out.rstrip().endswith("| sort 200 -num(SuspicionScore)")  # LogScale's 200, not Splunk's 10,000
    assert '| eval Severity=case(SuspicionScore>=6, "CRITICAL", SuspicionScore>=3, "HIGH", true(), "MEDIUM")' in out
    assert "| table _time " in out


def test_if_condition_on_a_field_that_may_be_missing_is_guarded() -> None:
    out = convert(P + 'x := if(CommandLine = /a/, "Y", "N")', to="spl")
    assert 'if((isnotnull(CommandLine) AND match(CommandLine, "a")), "Y", "N")' in out
