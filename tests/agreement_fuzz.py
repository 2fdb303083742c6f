"""Engine agreement over generated detections: the other half of tests/test_fuzz.py.

tests/test_fuzz.py feeds cqlx hostile text and checks that every output is valid in its target.
It cannot check that an output means what the query means, since its events are hostile values
(NaN, lists, None) on which the engines' types differ on purpose. This module generates queries
shaped like detection content instead (filters on real Falcon fields of process and network
events, signals, scores, severity
ladders, `case {}`, value functions, a `select()`) and lets :func:`cqlx.witness.generate` derive
well-formed events from each: values that meet each test and values that just miss it (the other
letter case, the field missing). :func:`cqlx.testing.test_rule` then runs them on the Python
matcher (the reference) and on every executable target: the written Python module, the KQL on
duckdb-kql, the Sigma on pySigma's sqlite backend, the SPL on the SPL oracle. A disagreement is a
:class:`cqlx.testing.Finding`.

A conversion cqlx refuses (detection loss) is skipped for its target, as ``cqlx test`` skips it;
what is written and compared is what cqlx says is exact. The generator is written against the
:class:`tests.test_fuzz.Chooser` interface, so Hypothesis drives it in tests/test_agreement_fuzz.py
and ``random.Random`` in the long runs of fuzz/agree_cql.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cqlx import testing
from cqlx.errors import CqlError
from cqlx.rules import Rule, RuleMeta
from cqlx.witness import generate as witnesses
from tests.test_fuzz import Chooser, chance, pick

#: Words the literals are made of: command-line pieces, paths with both separators, mixed case.
WORDS = ("docker", "run", "--privileged", "kubectl", "exec", "whoami", "cmd.exe", "powershell", "-enc",
         "bash", "sh", "nsenter", "curl", "http://x.io/a", "/tmp/x", "Admin", "root", "svc",
         "C:\\Windows\\x.exe", "a b", "ünï")
ADDRESSES = ("10.1.2.3", "192.168.0.5", "8.8.8.8", "172.16.9.1", "10.0.0.1")
SUBNETS = ("10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "8.8.8.0/24", "10.1.2.3/32")


@dataclass(frozen=True)
class Schema:
    """An event type and its fields that every profile maps to a column of the same information."""

    event_type: str
    text: tuple[str, ...]
    numbers: tuple[str, ...]
    file_names: frozenset[str] = frozenset()  # hold a file name: never a path separator
    addresses: tuple[str, ...] = ()  # hold IPv4 addresses: tested with cidr() too


SCHEMAS = (
    Schema("ProcessRollup2", ("CommandLine", "ImageFileName", "ParentBaseFileName", "ComputerName"),
           ("RawProcessId",), frozenset({"ParentBaseFileName"})),
    Schema("NetworkConnectIP4", ("RemoteAddressIP4", "LocalAddressIP4", "ContextBaseFileName", "ComputerName"),
           ("RemotePort", "LocalPort"), frozenset({"ContextBaseFileName"}), ("RemoteAddressIP4", "LocalAddressIP4")),
    Schema("DnsRequest", ("DomainName", "ContextBaseFileName", "ComputerName"), ("RequestType",),
           frozenset({"ContextBaseFileName"})),
)
#: What the whole rule outputs besides the fields it computes.
SHOWN = ("ComputerName",)


def cql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cql_regex(value: str) -> str:
    return re.escape(value).replace("/", "\\/")


class DetectionGenerator:
    """Queries shaped like detection content over one event type (module docstring)."""

    def __init__(self, c: Chooser) -> None:
        self.c = c
        self.schema = SCHEMAS[0]

    def word(self, field: str) -> str:
        if field in self.schema.addresses and chance(self.c, 70):
            return pick(self.c, ADDRESSES)
        while True:
            word = pick(self.c, WORDS)
            if chance(self.c, 30):
                word = word.upper() if chance(self.c, 50) else word.capitalize()
            if field not in self.schema.file_names or not ("/" in word or "\\" in word):
                return word

    def number(self) -> int:
        return self.c.integer(0, 200)

    def test(self, in_if: bool = False) -> str:
        """One test of one field. ``in_if``: a condition of if(), which takes a single test."""
        c = self.c
        field = pick(c, self.schema.text)
        w = self.word(field)
        flags = pick(c, ("", "i"))
        forms = [
            lambda: f"{field} = {cql_string(w)}",
            lambda: f"{field} = {cql_string('*' + w + '*')}",
            lambda: f"{field} = {cql_string(w + '*')}",
            lambda: f"{field} = {cql_string('*' + w)}",
            lambda: f"{field} = /{cql_regex(w)}/{flags}",
            lambda: f"{field} = /^{cql_regex(w)}/{flags}",
            lambda: f"{field} = /{cql_regex(w)}$/{flags}",
            lambda: f"{pick(c, self.schema.numbers)} {pick(c, ('>', '<', '>=', '<=', '='))} {self.number()}",
        ]
        if self.schema.addresses:
            address = pick(c, self.schema.addresses)
            subnets = ", ".join(cql_string(pick(c, SUBNETS)) for _ in range(c.integer(1, 2)))
            forms.append(lambda: f"{pick(c, ('', '!'))}cidr({address}, subnet=[{subnets}])")
        if not in_if:
            forms += [
                lambda: f"{field} != {cql_string(w)}",
                lambda: f"in({field}, values=[{cql_string(w)}, {cql_string(self.word(field))}]"
                        + pick(c, ("", ", ignoreCase=true")) + ")",
                lambda: f"{field} = *",
                lambda: f"{field} != *",
                lambda: f"test(length({field}) > {c.integer(0, 30)})",
                lambda: f"test({pick(c, self.schema.numbers)} != {self.number()})",
                lambda: f"not {pick(c, self.schema.numbers)} {pick(c, ('>', '<', '='))} {self.number()}",
                lambda: f"{field} != {cql_string('*' + w + '*')}",
                lambda: f"in({field}, values=[{cql_string(w + '*')}, {cql_string(self.word(field))}])",
                lambda: f'test(lower({field}) == {cql_string(w.lower())})',
                lambda: f"test(length({field}) > length({pick(c, self.schema.text)}))",
                lambda: f"text:contains(string={field}, substring={cql_string(w)})",
                lambda: f"{field} =~ wildcard({cql_string('*' + w + '*')}" + pick(c, ("", ", ignoreCase=true")) + ")",
                lambda: f"{field} = /(?<G{c.integer(0, 9)}>{cql_regex(w)})/{flags}",
            ]
        return pick(c, forms)()

    def condition(self, depth: int = 0) -> str:
        roll = self.c.integer(0, 5) if depth < 2 else 0
        if roll <= 2:
            return self.test()
        if roll == 3:
            return f"({self.condition(depth + 1)} or {self.condition(depth + 1)})"
        if roll == 4:
            return f"not {self.test()}"
        return f"{self.condition(depth + 1)} and {self.condition(depth + 1)}"

    def case(self, outputs: list[str]) -> str:
        c = self.c
        branches = [f"{self.condition(1)} | Kind := {cql_string(f'k{i}')}" for i in range(c.integer(1, 3))]
        if chance(c, 60):
            branches.append('* | Kind := "other"')
        outputs.append("Kind")
        return "case { " + "; ".join(branches) + "; }"

    def match(self, outputs: list[str]) -> str:
        """``field match { pattern => ... }``: each pattern tests the field as ``field = pattern``."""
        c = self.c
        field = pick(c, self.schema.text)
        patterns = [pick(c, (cql_string(self.word(field)), cql_string("*" + self.word(field) + "*"),
                             f"/{cql_regex(self.word(field))}/{pick(c, ('', 'i'))}"))
                    for _ in range(c.integer(1, 3))]
        if chance(c, 60):
            patterns.append("*")
        outputs.append("Kind")
        return f"{field} match {{ " + " ; ".join(f'{p} => Kind := "m{i}"' for i, p in enumerate(patterns)) + " }"

    def value(self, outputs: list[str], index: int) -> str:
        """An assignment of a value function's result."""
        c = self.c
        field = pick(c, self.schema.text)
        name = f"V{index}"
        outputs.append(name)
        forms = [
            lambda: f"{name} := lower({field})",
            lambda: f"{name} := upper({field})",
            lambda: f"{name} := length({field})",
            lambda: f"{name} := concat([{field}, {pick(c, self.schema.text)}])",
            lambda: f'{name} := format("%s-%s", field=[{field}, {pick(c, self.schema.text)}])',
            lambda: f'{name} := replace({cql_string(re.escape(self.word(field)))}, with="_", field={field}'
                    + pick(c, ("", ", flags=i")) + ")",
            lambda: f'{name} := splitString({field}, by="/", index={c.integer(-1, 2)})',
            lambda: f"{name} := {pick(c, self.schema.numbers)} + {self.number()}",
            lambda: f'{name} := if({self.test(in_if=True)}, "yes", "no")',
            lambda: f'default(field={field}, value="none") | {name} := {field}',
            lambda: f'{name} := coalesce([{field}, {pick(c, self.schema.text)}, "none"])',
            lambda: f"{name} := length({field}) * 2",
            lambda: f"{name} := crypto:md5([{field}, {pick(c, self.schema.text)}])",
        ]
        return pick(c, forms)()

    def query(self) -> str:
        c = self.c
        self.schema = pick(c, SCHEMAS)
        steps = [f"#event_simpleName={self.schema.event_type}"]
        steps += [self.condition() for _ in range(c.integer(1, 2))]
        outputs: list[str] = []
        if chance(c, 25):
            steps.append(self.case(outputs))
        elif chance(c, 20):
            steps.append(self.match(outputs))
        weights = []
        for i in range(c.integer(0, 3)):
            test = self.test(in_if=True)
            steps.append(f'F{i} := if({test}, "YES", "NO")')
            steps.append(f"W{i} := if({test}, {c.integer(1, 3)}, 0)")
            outputs.append(f"F{i}")
            weights.append(f"W{i}")
        if weights:
            steps.append("Score := " + " + ".join(weights))
            steps.append('Severity := if(Score >= 4, "HIGH", if(Score >= 2, "MEDIUM", "LOW"))')
            outputs += ["Score", "Severity"]
        for i in range(c.integer(0, 2)):
            steps.append(self.value(outputs, i))
        if chance(c, 20):
            # not on an address: the witness of `(?<Rest>.*)` would be no address ("10.1.2.3x"),
            # which pySigma's sqlite backend tests for |cidr by prefix
            field = pick(c, [f for f in self.schema.text if f not in self.schema.addresses])
            pattern = cql_string(f"(?<Part>{re.escape(self.word(field))})(?<Rest>.*)")
            steps.append(f"regex({pattern}, field={field}" + pick(c, ("", ", flags=i"))
                         + pick(c, ("", ", strict=false")) + ")")
            outputs += ["Part", "Rest"]
        if chance(c, 10):  # a row of each match (the witnesses give a value several matches)
            field = pick(c, [f for f in self.schema.text if f not in self.schema.addresses])
            start = re.escape(self.word(field)[:2] or "a")
            pattern, groups = pick(c, ((f"(?<Each>{start}[a-z0-9]*)", ["Each"]),
                                       (f"(?<Each>{start})(?<Tail>[a-z0-9]+)", ["Each", "Tail"])))
            steps.append(f"regex({cql_string(pattern)}, field={field}, repeat=true"
                         + pick(c, ("", ", flags=i")) + pick(c, ("", ", limit=1", ", limit=2", ", limit=3"))
                         + pick(c, ("", ", strict=false")) + ")")
            outputs += groups
        if chance(c, 30):
            steps += self.aggregation(outputs)
        else:
            shown = list(dict.fromkeys([*SHOWN, pick(self.c, self.schema.text), *outputs]))
            steps.append(f"select([{', '.join(shown)}])")
        return "\n| ".join(steps) + "\n"

    def aggregation(self, outputs: list[str]) -> list[str]:
        """groupBy() over a field the events share or one the rule computed, and maybe a
        threshold on a result."""
        c = self.c
        keys = list(dict.fromkeys(pick(c, [*self.schema.text[1:], *outputs]) for _ in range(c.integer(1, 2))))
        number = pick(c, self.schema.numbers)
        functions = [pick(c, (f"count(as=n{i})", f"max({number}, as=n{i})", f"min({number}, as=n{i})",
                              f"sum({number}, as=n{i})", f"count({keys[0]}, distinct=true, as=n{i})",
                              f"count({pick(c, self.schema.text)}, as=n{i})"))
                     for i in range(c.integer(1, 3))]
        if chance(c, 30):  # the distinct values of a field the groups do not share
            functions.append(f"collect([{pick(c, [f for f in self.schema.text if f not in keys] or ['aid'])}])")
        steps = [f"groupBy([{', '.join(keys)}], function=[{', '.join(functions)}])"]
        if chance(c, 25):  # stats(): one-row functions over the group rows, on each of them
            total = pick(c, ("sum(n0, as=total)", "count(as=total)", "max(n0, as=total)", "min(n0, as=total)"))
            sort = f"sort([{', '.join(keys)}], order={pick(c, ('asc', 'desc'))}, type=string, limit={c.integer(1, 4)})"
            steps.append(f"[{total}, {sort}]")
            if chance(c, 50):
                steps.append("share := 100 * n0 / total")
        if chance(c, 40):
            steps.append(f"n0 {pick(c, ('>', '>=', '<'))} {c.integer(0, 3)}")
        return steps


#: The targets compared: every executable one (Kusto.Language is tests/test_fuzz.py's, in batches).
TARGETS = tuple(t for t in testing.TARGETS if t != "kql-parser")


def check_agreement(text: str, seed: int = 0, targets: Sequence[str] = TARGETS,
                    profiles: Mapping[str, str] | None = None) -> testing.Report:
    """Run ``text`` over its witness events on the reference and on ``targets``: the report's
    findings are the disagreements (and a query that does not parse is a finding too).
    ``profiles`` maps a language to the profile its target uses (``{"kql": "sentinel-asim"}``)."""
    rule = Rule(path="generated.cql", text=text, meta=RuleMeta())
    report = testing.Report()
    try:
        query = rule.parse()
    except CqlError as error:
        report.findings.append(testing.Finding(rule.path, "parse", "-", error.message))
        return report
    found = witnesses(query, seed)
    if testing.aggregates(query):
        cases = [testing.witness_stream(query, (w.event for w in found))]
    else:
        cases = [testing.Case(f"witness: {w.name}", w.event) for w in found]
    testing.test_rule(rule, report, extra=cases, query=query, targets=tuple(targets), profiles=profiles)
    return report


def describe(report: testing.Report, text: str) -> str:
    lines = [text.rstrip()]
    for finding in report.findings:
        lines.append(f"  {finding.target} {finding.case}: {finding.message}")
        if finding.event is not None:
            lines.append(f"    event: {finding.event!r}")
    return "\n".join(lines)
