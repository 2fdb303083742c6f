"""Batch conversion (``cqlx convert DIR --to all --output OUT --report R``), run as a user runs it,
and the pieces under it: the files a batch reads (LogScale packages included) and the names it writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cqlx import batch
from cqlx.errors import CqlError, RuleFileError
from cqlx.rules import NoQueryError, load_rule, load_rules

ALL = ("spl", "kql", "sigma", "python", "cql")
EXTENSIONS = {"spl": ".spl", "kql": ".kql", "sigma": ".yml", "python": ".py", "cql": ".cql"}
TARGET_NAMES = ("spl (splunk)", "kql (mde)", "sigma (sigma)", "python (falcon)", "cql (logscale)")

SAVED_SEARCHES = """\
$schema: https://schemas.humio.com/savedsearch/v0.1.0
name: Encoded PowerShell
description: PowerShell with an encoded command
queryString: |-
  #event_simpleName=ProcessRollup2
  | CommandLine=/-enc/i
---
$schema: https://schemas.humio.com/savedsearch/v0.1.0
name: Certutil download
queryString: '#event_simpleName=ProcessRollup2 | CommandLine=/urlcache/i'
"""


def cqlx(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cqlx", *args], capture_output=True, text=True, timeout=300,
                            cwd=cwd)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "internal error" not in result.stderr
    return result


def library(root: Path, broken: bool = True, lossy: bool = True) -> Path:
    """A rule library: good rules, two with the same stem in different folders, two with the same stem
    in one folder, a LogScale package (manifest and a file with two saved searches), one rule with
    detection loss on KQL, and one with a syntax error."""
    files = {
        "good/a.cql": "#event_simpleName=ProcessRollup2\n| CommandLine=/whoami/i\n",
        "other/a.cql": "#event_simpleName=ProcessRollup2 ImageFileName=/\\\\cmd\\.exe$/i\n",
        "x/dup.cql": "#event_simpleName=ProcessRollup2 | CommandLine=/vssadmin/i\n",
        "x/dup.yml": "title: Dup card\nid: dup-1\nquery: |\n  #event_simpleName=ProcessRollup2\n"
                     "  | CommandLine=/nltest/i\n",
        "pkg/manifest.yaml": "name: acme/hunting\nversion: 1.0.0\ndescription: Hunting queries\n",
        "pkg/saved-searches.yaml": SAVED_SEARCHES,
    }
    if lossy:
        files["lossy.cql"] = "#event_simpleName=ProcessRollup2 | CommandLine = /(?<=x)y/\n"
    if broken:
        files["broken.cql"] = "#event_simpleName=ProcessRollup2\n| CommandLine = \n"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def outputs(stem: str, targets: tuple[str, ...] = ALL) -> set[str]:
    return {stem + EXTENSIONS[t] for t in targets}


def summary_row(stdout: str, target: str) -> list[int]:
    """exact, presentation, detection, failed, total, written from the summary table."""
    line = next(x for x in stdout.splitlines() if x.startswith(target + " "))
    return [int(n) for n in line[len(target):].split()]


def test_a_mixed_library(tmp_path: Path) -> None:
    rules = library(tmp_path / "rules")
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    result = cqlx("convert", str(rules), "--to", "all", "--output", str(out), "--report", str(report))
    assert result.returncode == 2, result.stderr  # a rule does not parse; the others are still converted
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = (outputs("good/a") | outputs("other/a") | outputs("x/dup.cql") | outputs("x/dup.yml")
                | outputs("pkg/saved-searches-Encoded-PowerShell") | outputs("pkg/saved-searches-Certutil-download")
                | outputs("lossy", ("spl", "sigma", "python", "cql")))  # no lossy.kql: refused
    assert written == expected
    assert "CommandLine=/nltest/i" in (out / "x/dup.yml.cql").read_text(encoding="utf-8")
    assert "vssadmin" in (out / "x/dup.cql.kql").read_text(encoding="utf-8")
    assert "cmd\\.exe" in (out / "other/a.kql").read_text(encoding="utf-8")
    assert "whoami" in (out / "good/a.kql").read_text(encoding="utf-8")
    assert "urlcache" in (out / "pkg/saved-searches-Certutil-download.spl").read_text(encoding="utf-8")

    # the summary: 8 queries (the manifest is skipped), per target
    assert summary_row(result.stdout, "spl (splunk)") == [7, 0, 0, 1, 8, 7]
    assert summary_row(result.stdout, "kql (mde)") == [6, 0, 1, 1, 8, 6]
    assert summary_row(result.stdout, "sigma (sigma)") == [6, 1, 0, 1, 8, 7]
    assert summary_row(result.stdout, "total") == [33, 1, 1, 5, 40, 34]
    assert "8 rules x 5 targets; 34 written" in result.stdout and "1 refused" in result.stdout
    # every problem on stderr with its place in the file; nothing drawn when stderr is not a terminal
    assert f"{rules / 'broken.cql'}:2:17: expected a value after '='" in result.stderr
    assert f"{rules / 'lossy.cql'}:1:36: cannot convert to kql (mde)" in result.stderr
    assert f"{rules / 'pkg' / 'manifest.yaml'}: skipped" in result.stderr
    assert "\x1b[" not in result.stderr + result.stdout and "━" not in result.stderr

    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["format"] == "cqlx-convert/1" and data["exit"] == 2 and data["policy"] == "error"
    assert [t["name"] for t in data["targets"]] == list(TARGET_NAMES)
    assert data["totals"]["kql (mde)"] == {"exact": 6, "presentation": 0, "detection": 1, "failed": 1, "total": 8,
                                           "written": 6, "refused": 1}
    assert data["skipped"] == [{"path": str(rules / "pkg" / "manifest.yaml"),
                                "reason": "a LogScale package manifest holds no query: not a rule"}]
    by_path = {(r["path"], r["index"]): r for r in data["rules"]}
    assert len(by_path) == 8
    lossy = by_path[(str(rules / "lossy.cql"), 0)]
    kql = lossy["targets"]["kql (mde)"]
    assert kql["class"] == "detection" and kql["written"] is False and kql["file"] is None and kql["refused"]
    assert kql["diagnostics"] == [{
        "kind": "detection", "message": "the regex uses lookbehind, which RE2 (KQL) does not have",
        "path": str(rules / "lossy.cql"), "line": 1, "column": 36, "location": f"{rules / 'lossy.cql'}:1:36",
        "construct": "CommandLine = /(?<=x)y/"}]
    sigma = lossy["targets"]["sigma (sigma)"]
    assert sigma["class"] == "presentation" and sigma["file"] == (out / "lossy.yml").as_posix()
    assert lossy["targets"]["spl (splunk)"]["class"] == "exact"
    broken = by_path[(str(rules / "broken.cql"), 0)]
    assert broken["error"]["location"] == f"{rules / 'broken.cql'}:2:17"
    assert {t["class"] for t in broken["targets"].values()} == {"failed"}
    assert not any(t["written"] for t in broken["targets"].values())
    second = by_path[(str(rules / "pkg" / "saved-searches.yaml"), 2)]
    assert second["title"] == second["name"] == "Certutil download"
    assert second["targets"]["kql (mde)"]["file"] == (out / "pkg/saved-searches-Certutil-download.kql").as_posix()
    card = by_path[(str(rules / "x" / "dup.yml"), 0)]
    assert card["id"] == "dup-1" and card["title"] == "Dup card"
    # every file the report names is there, and every file there is named once
    named = [t["file"] for r in data["rules"] for t in r["targets"].values() if t["file"]]
    assert sorted(named) == sorted((out / p).as_posix() for p in expected)


def test_exit_status_refused_and_warned(tmp_path: Path) -> None:
    rules = library(tmp_path / "rules", broken=False)
    refused = cqlx("convert", str(rules), "--to", "kql,spl", "--output", str(tmp_path / "a"))
    assert refused.returncode == 1, refused.stderr
    assert summary_row(refused.stdout, "kql (mde)") == [6, 0, 1, 0, 7, 6]
    assert summary_row(refused.stdout, "spl (splunk)") == [7, 0, 0, 0, 7, 7]
    assert not (tmp_path / "a" / "lossy.kql").exists() and (tmp_path / "a" / "lossy.spl").exists()
    assert not list((tmp_path / "a").rglob("*.py"))  # only the targets asked for
    warned = cqlx("convert", str(rules), "--to", "kql", "--output", str(tmp_path / "b"), "--on-lossy", "warn")
    assert warned.returncode == 0, warned.stderr
    assert "matches regex" in (tmp_path / "b" / "lossy.kql").read_text(encoding="utf-8")
    assert "warning: detection loss on kql (mde)" in warned.stderr
    clean = cqlx("convert", str(library(tmp_path / "clean", broken=False, lossy=False)), "--to", "all",
                 "--output", str(tmp_path / "c"))
    assert clean.returncode == 0, clean.stderr


@pytest.mark.parametrize(("target", "why"), [("kql", "a KQL query needs a table"),
                                            ("sigma", "a Sigma rule needs a logsource")])
def test_a_rule_no_target_text_can_hold_is_refused_under_every_policy(tmp_path: Path, target: str, why: str) -> None:
    """No event type, none inferred: no table or logsource to write. --on-lossy warn does not write
    `<no table>` or an empty logsource, which the SIEM would reject; it refuses, and says why."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "untyped.cql").write_text("Foo=1\n", encoding="utf-8")
    for policy in ("warn", "ignore"):
        result = cqlx("convert", str(rules), "--to", target, "--output", str(tmp_path / policy), "--on-lossy", policy)
        assert result.returncode == 1, result.stderr
        assert "whatever --on-lossy says" in result.stderr and why in result.stderr
        assert not list((tmp_path / policy).rglob("untyped.*"))


def test_several_rules_on_stdout_and_a_forced_progress_bar(tmp_path: Path) -> None:
    rules = library(tmp_path / "rules", broken=False, lossy=False)
    report = tmp_path / "r.json"
    plain = cqlx("convert", str(rules), "--to", "kql", "--report", str(report))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.count("// ") == 6 and f"// {rules / 'good' / 'a.cql'} -> kql (mde)" in plain.stdout
    assert "exact" not in plain.stdout  # the summary goes to stderr when stdout holds the conversions
    assert summary_row(plain.stderr, "kql (mde)") == [6, 0, 0, 0, 6, 6]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["output"] is None
    assert all(t["written"] and t["file"] is None for r in data["rules"] for t in r["targets"].values())
    shown = cqlx("convert", str(rules), "--to", "kql", "--progress")
    assert shown.returncode == 0
    assert shown.stdout == plain.stdout  # the bar is on stderr only
    assert "━" in shown.stderr or "\x1b[" in shown.stderr
    hidden = cqlx("convert", str(rules), "--to", "kql", "--no-progress")
    assert "\x1b[" not in hidden.stderr and hidden.stdout == plain.stdout


@pytest.mark.parametrize("to", ["cobol", "kql,cobol", "sigma:", ","])
def test_bad_targets_exit_2(tmp_path: Path, to: str) -> None:
    rules = library(tmp_path / "rules")
    result = cqlx("convert", str(rules), "--to", to, "--output", str(tmp_path / "out"))
    assert result.returncode == 2 and "--to" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_profile_applies_to_its_own_language(tmp_path: Path) -> None:
    rules = library(tmp_path / "rules", broken=False, lossy=False)
    result = cqlx("convert", str(rules), "--to", "kql,spl", "--profile", "sentinel-asim", "--output",
                  str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert summary_row(result.stdout, "kql (sentinel-asim)")[4] == 6
    assert "spl (splunk)" in result.stdout
    wrong = cqlx("convert", str(rules), "--to", "spl", "--profile", "sentinel-asim")
    assert wrong.returncode == 2 and "sentinel-asim" in wrong.stderr


# ---------------------------------------------------------------- the pieces


def test_logscale_package_files(tmp_path: Path) -> None:
    alert = tmp_path / "alert.yaml"
    alert.write_text("$schema: https://schemas.humio.com/alert/v0.3.0\nname: Lookbehind\ndescription: d\nquery:\n"
                     "  queryString: |-\n    #event_simpleName=ProcessRollup2\n    | CommandLine=/(?<=x)y/\n"
                     "  start: 1h\nlabels: [T1059.001]\n", encoding="utf-8")
    rule = load_rule(alert)
    assert rule.meta.title == "Lookbehind" and rule.location(rule.parse().steps[-1].span) == f"{alert}:7:7"
    board = tmp_path / "board.yaml"
    board.write_text("name: Board\n$schema: https://schemas.humio.com/dashboard/v0.23.0\nwidgets:\n"
                     "  w1:\n    title: Encoded\n    type: query\n    queryString: '#event_simpleName=ProcessRollup2'\n"
                     "  n:\n    type: note\n    text: hi\n"
                     "  w2:\n    queryString: |\n      #event_simpleName=ProcessRollup2\n"
                     "      | sort(x, order=sideways)\n",
                     encoding="utf-8")
    widgets = load_rules(board)
    assert [(r.index, r.name, r.meta.title) for r in widgets] == [(1, "Encoded", "Board: Encoded"),
                                                                  (2, "w2", "Board: w2")]
    with pytest.raises(CqlError, match=r"order=sideways is not a sort order") as caught:
        widgets[1].parse()
    assert str(caught.value).startswith(f"{board}:14:23:")
    with pytest.raises(RuleFileError, match="holds 2 queries"):
        load_rule(board)
    cards = tmp_path / "cards.yml"
    cards.write_text("- title: one\n  query: 'CommandLine=a'\n- name: two\n  queryString: 'CommandLine=b'\n",
                     encoding="utf-8")
    assert [(r.name, r.text, r.line_offset) for r in load_rules(cards)] == [("one", "CommandLine=a", 1),
                                                                          ("two", "CommandLine=b", 3)]
    parser = tmp_path / "parser.yaml"
    parser.write_text("$schema: https://schemas.humio.com/parser/v0.3.0\nname: p\nscript: x\n", encoding="utf-8")
    with pytest.raises(NoQueryError, match="parser holds no query"):
        load_rules(parser)
    plain = tmp_path / "plain.yml"
    plain.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="has no query") as error:
        load_rules(plain)
    assert not isinstance(error.value, NoQueryError)
    empty = tmp_path / "empty.yml"
    empty.write_text("---\n---\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="has no query"):
        load_rules(empty)


def _entry(relative: str, name: str = "", index: int = 0) -> batch.Entry:
    from cqlx.emit.base import RuleMeta
    from cqlx.rules import Rule

    return batch.Entry(relative, relative, Rule(relative, "x", RuleMeta(), name=name, index=index))


def test_output_stems_never_collide() -> None:
    entries = [_entry("a/r.cql"), _entry("b/r.cql"), _entry("c/r.cql"), _entry("c/r.yml"), _entry("c/R.yaml"),
               _entry("p.yaml", "Same name", 1), _entry("p.yaml", "Same  name", 2), _entry("p.yaml", "", 3),
               _entry("p-Same-name.cql")]
    stems = batch.assign_stems(entries)
    assert stems == ("a/r", "b/r", "c/r.cql", "c/r.yml", "c/R.yaml", "p-Same-name.yaml", "p-Same-name.yaml-2",
                     "p-3", "p-Same-name.cql")
    assert len({s.casefold() for s in stems}) == len(stems)


def test_summary_lines_align() -> None:
    targets = batch.parse_targets("kql,spl")
    lines = batch.summary_lines(batch.totals([], targets))
    assert lines[0].split()[:2] == ["target", "exact"] and len({len(x) for x in lines}) == 1
    assert re.match(r"total\s+0\s+0\s+0\s+0\s+0\s+0$", lines[-1])


def test_jobs_give_the_same_output(tmp_path: Path) -> None:
    rules = library(tmp_path / "rules")
    one = cqlx("convert", str(rules), "--to", "kql,sigma", "--output", str(tmp_path / "one"))
    two = cqlx("convert", str(rules), "--to", "kql,sigma", "--output", str(tmp_path / "two"), "--jobs", "2")
    assert one.returncode == two.returncode == 2
    assert one.stdout.replace("/one", "/two") == two.stdout
    assert one.stderr == two.stderr
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert all((tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes() for f in files)


def test_a_control_character_in_a_rule_card_is_bad_input(tmp_path: Path) -> None:
    """Fuzz finding: PyYAML's reader refuses it while the loader is made, before the parse."""
    card = tmp_path / "ctl.yml"
    card.write_text("title: x\nquery: |\n  CommandLine = \"a\x01\"\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="not valid YAML: unacceptable character #x0001") as caught:
        load_rule(card)
    assert caught.value.span.line == 3
