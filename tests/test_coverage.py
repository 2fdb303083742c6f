"""cqlx coverage: the classification, ATT&CK Navigator layers (validated against layer format 4.5),
the reports (the HTML in a real headless Chromium), the baseline diff and --fail-on-gaps."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cqlx import coverage as cov
from cqlx import coverage_report
from cqlx.ast import Span
from cqlx.attack import catalogue, normalise
from cqlx.conversion import Conversion
from cqlx.emit.base import Diagnostic
from cqlx.errors import CqlError
from cqlx.rules import load_rule
from tests.conftest import SAMPLES, SEED_CARD

SEED_ID = "7c2e9a41-5b3d-4f6e-8a1c-2d9f0b7e4c13"


def cqlx(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cqlx", *args], capture_output=True, text=True, timeout=300,
                            cwd=cwd)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result


# ---------------------------------------------------------------- Navigator layer format 4.5

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_TOP = {"name": str, "versions": dict, "domain": str, "description": str, "customDataURL": str, "filters": dict,
        "sorting": int, "layout": dict, "hideDisabled": bool, "techniques": list, "gradient": dict,
        "legendItems": list, "showTacticRowBackground": bool, "tacticRowBackground": str,
        "selectTechniquesAcrossTactics": bool, "selectSubtechniquesWithParent": bool,
        "selectVisibleTechniques": bool, "metadata": list, "links": list}
_TECHNIQUE = {"techniqueID": str, "tactic": str, "comment": str, "enabled": bool, "score": (int, float),
              "color": str, "metadata": list, "links": list, "showSubtechniques": bool}
_LAYOUT = {"layout": ("side", "flat", "mini"), "aggregateFunction": ("average", "min", "max", "sum"),
           "expandedSubtechniques": ("none", "all", "annotated")}


def _metadata_problems(items: Any, where: str) -> list[str]:
    if not isinstance(items, list):
        return [f"{where}: not a list"]
    problems = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"divider"} and isinstance(item["divider"], bool):
            continue
        if not (isinstance(item, dict) and set(item) == {"name", "value"}
                and all(isinstance(v, str) for v in item.values())):
            problems.append(f"{where}: {item!r} is neither a metadata object (name, value) nor a divider")
    return problems


def layer_problems(layer: Any) -> list[str]:
    """What makes ``layer`` not an ATT&CK Navigator layer of format 4.5 (LAYERFORMATv4_5.md)."""
    if not isinstance(layer, dict):
        return ["a layer is a JSON object"]
    problems = [f"unknown key {k!r}" for k in layer if k not in _TOP]
    problems += [f"{k} must be {t.__name__}" for k, t in _TOP.items() if k in layer and not isinstance(layer[k], t)]
    for key in ("name", "domain"):
        if key not in layer:
            problems.append(f"required key {key} is missing")
    if layer.get("domain") not in ("enterprise-attack", "mobile-attack", "ics-attack"):
        problems.append(f"domain {layer.get('domain')!r} is not a Navigator domain")
    versions = layer.get("versions")
    if (not isinstance(versions, dict) or versions.get("layer") != "4.5"
            or not isinstance(versions.get("navigator"), str)):
        problems.append("versions.layer must be '4.5' and versions.navigator a string")
    elif tuple(int(x) for x in versions["navigator"].split(".")) < (4, 9, 0):
        problems.append("versions.navigator must be at least 4.9.0")
    if isinstance(versions, dict) and "attack" in versions and not isinstance(versions["attack"], str):
        problems.append("versions.attack must be a string")
    if "sorting" in layer and layer["sorting"] not in (0, 1, 2, 3):
        problems.append("sorting must be 0..3")
    for key, allowed in _LAYOUT.items():
        if key in layer.get("layout", {}) and layer["layout"][key] not in allowed:
            problems.append(f"layout.{key} must be one of {allowed}")
    for technique in layer.get("techniques", []):
        if not isinstance(technique, dict) or not isinstance(technique.get("techniqueID"), str):
            problems.append(f"technique {technique!r} needs a techniqueID string")
            continue
        if not re.match(r"^T\d{4}(\.\d{3})?$", technique["techniqueID"]):
            problems.append(f"techniqueID {technique['techniqueID']!r} is not T#### or T####.###")
        problems += [f"technique key {k!r} unknown" for k in technique if k not in _TECHNIQUE]
        problems += [f"{technique['techniqueID']}.{k} has the wrong type" for k, t in _TECHNIQUE.items()
                     if k in technique and (not isinstance(technique[k], t) or (isinstance(technique[k], bool)
                                            and t in ((int, float),)))]
        if "color" in technique and not _HEX.match(technique["color"]):
            problems.append(f"{technique['techniqueID']}.color is not #rrggbb")
        if "metadata" in technique:
            problems += _metadata_problems(technique["metadata"], f"{technique['techniqueID']}.metadata")
    gradient = layer.get("gradient")
    if gradient is not None:
        colours = gradient.get("colors")
        if not (isinstance(colours, list) and len(colours) >= 2 and all(isinstance(c, str) and _HEX.match(c)
                                                                         for c in colours)):
            problems.append("gradient.colors needs at least two #rrggbb strings")
        low, high = gradient.get("minValue"), gradient.get("maxValue")
        if not (isinstance(low, int | float) and isinstance(high, int | float) and high > low):
            problems.append("gradient needs numbers minValue < maxValue")
    for item in layer.get("legendItems", []):
        if not (isinstance(item, dict) and isinstance(item.get("label"), str) and isinstance(item.get("color"), str)):
            problems.append(f"legend item {item!r} needs label and color strings")
    if "metadata" in layer:
        problems += _metadata_problems(layer["metadata"], "metadata")
    return problems


def test_the_validator_refuses_what_is_not_a_layer() -> None:
    assert layer_problems({"name": "x", "domain": "enterprise-attack", "versions": {"layer": "4.5", "navigator":
                                                                                     "5.1.0"}}) == []
    bad = {"name": "x", "domain": "enterprise", "versions": {"layer": "4.4", "navigator": "4.8.0"}, "extra": 1,
           "techniques": [{"techniqueID": "1059", "score": "3", "color": "red"}],
           "gradient": {"colors": ["#ffffff"], "minValue": 5, "maxValue": 5}}
    problems = " | ".join(layer_problems(bad))
    for words in ("unknown key 'extra'", "domain", "versions.layer", "T####", "wrong type", "#rrggbb",
                  "gradient.colors", "minValue < maxValue"):
        assert words in problems


# ---------------------------------------------------------------- the classification


def _rule() -> Any:
    return load_rule(SAMPLES / "rules" / "rdp_logon_admin.yml")


def test_classify_reads_the_diagnostics() -> None:
    rule = _rule()
    exact = cov.classify(Conversion("kql", "mde", "x", ()), rule, "kql (mde)")
    assert exact == cov.Cell("kql (mde)", cov.EXACT, ())
    presentation = Diagnostic("presentation", "kql (mde)", "a sort", Span(3, 5, 3, 9))
    detection = Diagnostic("detection", "kql (mde)", "a field", Span(1, 29, 1, 41))
    assert cov.classify(Conversion("kql", "mde", "x", (presentation,)), rule, "t").status == cov.PRESENTATION
    cell = cov.classify(Conversion("kql", "mde", "x", (presentation, detection)), rule, "t")
    assert cell.status == cov.DETECTION
    first = cell.reasons[0]  # detection first, placed in the file (the query starts on line 17, column 3)
    assert (first.kind, first.line, first.column, first.construct) == (cov.DETECTION, 17, 31, "LogonType=10")
    failed = cov.failed(CqlError("no", Span(1, 3, 1, 4)), rule, "t")
    assert failed.status == cov.FAILED and failed.reasons[0].line == 17


def test_the_sample_library_matrix() -> None:
    columns = cov.parse_columns("spl,kql,sigma,python")
    coverage = cov.assess([str(SAMPLES)], columns, catalogue())
    assert coverage.targets == ("spl (splunk)", "kql (mde)", "sigma (sigma)", "python (falcon)")
    rows = {r.key: {c.target: c.status for c in r.cells} for r in coverage.rules}
    assert len(rows) >= 8
    assert rows[SEED_ID] == {"spl (splunk)": "presentation", "kql (mde)": "exact", "sigma (sigma)": "presentation",
                             "python (falcon)": "exact"}
    rdp = next(r for r in coverage.rules if r.path.endswith("rdp_logon_admin.yml"))
    assert rdp.cell("sigma (sigma)").status == cov.FAILED  # no logsource: no Sigma rule  # type: ignore[union-attr]
    assert any("UserLogon has no counterpart" in r.message for r in rdp.cell("sigma (sigma)").reasons)  # type: ignore[union-attr]
    # The Python matcher runs every sample but the hunt that needs a saved search's body; an
    # enrichment only LogScale has (ipLocation) is left out of what it shows.
    python = {r.path.rsplit("/", 1)[-1]: r.cell("python (falcon)").status for r in coverage.rules}  # type: ignore[union-attr]
    assert python.pop("stateful_hunt.yml") == cov.DETECTION
    assert python.pop("outbound_rare_port.yml") == cov.PRESENTATION
    assert set(python.values()) == {cov.EXACT}
    seed = next(t for t in coverage.techniques() if t.id == "T1059.013")
    assert (seed.name, seed.tactics) == ("Container CLI/API", ("execution",))
    assert ("kql (mde)", "T1021.001") in coverage.gaps() and ("spl (splunk)", "T1021.001") not in coverage.gaps()
    totals = coverage.totals()
    assert sum(totals["kql (mde)"].values()) == len(rows)


def test_columns_from_to_and_profiles() -> None:
    columns = cov.parse_columns("kql", ["mde", "sentinel-asim"])
    assert [c.name for c in columns] == ["kql (mde)", "kql (sentinel-asim)"]
    with pytest.raises(CqlError, match="unknown target 'splunk'"):
        cov.parse_columns("splunk")
    with pytest.raises(CqlError, match="which --to does not include"):
        cov.parse_columns("kql", ["splunk"])


def test_techniques_from_tags_labels_and_mitre(tmp_path: Path) -> None:
    assert normalise("attack.t1059.013") == "T1059.013" and normalise("T1059/013") == "T1059.013"
    assert normalise("execution") is None
    package = tmp_path / "alert.yaml"
    package.write_text("name: Encoded PowerShell\nlabels: [T1059.001, 'mitre:T1027', triage]\n"
                       "tags: [attack.t1204.002]\nqueryString: '#event_simpleName=ProcessRollup2 CommandLine=*-enc*'\n",
                       encoding="utf-8")
    techniques, notes = cov.rule_techniques(load_rule(package))
    assert techniques == ("T1204.002", "T1059.001", "T1027")
    assert notes == ()
    card = tmp_path / "card.yml"
    card.write_text("title: t\nmitre: {techniques: [T59, t1105]}\nquery: '#event_simpleName=ProcessRollup2'\n",
                    encoding="utf-8")
    techniques, notes = cov.rule_techniques(load_rule(card))
    assert techniques == ("T1105",) and "'T59' is not an ATT&CK technique id" in notes[0].message


def test_json_round_trip_and_diff() -> None:
    coverage = cov.assess([str(SAMPLES)], cov.parse_columns("kql,sigma"), catalogue())
    again = cov.from_json(json.loads(coverage_report.dumps(cov.to_json(coverage))))
    assert again.totals() == coverage.totals() and again.targets == coverage.targets
    assert [(t.id, t.name, t.tallies) for t in again.techniques()] == \
        [(t.id, t.name, t.tallies) for t in coverage.techniques()]
    assert cov.diff(coverage, again).empty
    fewer = cov.Coverage(coverage.columns, tuple(r for r in coverage.rules if r.key != SEED_ID))
    changes = cov.diff(coverage, fewer)
    assert changes.regressions == (("kql (mde)", "T1059.013"), ("sigma (sigma)", "T1059.013"))
    assert all(c.after is None and c.regression for c in changes.cells)
    with pytest.raises(CqlError, match="not a cqlx coverage report"):
        cov.from_json({"format": "something else"})


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def samples_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("coverage")
    result = cqlx("coverage", str(SAMPLES), "--navigator", str(out / "layers"), "--html", str(out / "report.html"),
                  "--json", str(out / "cov.json"), "--markdown", str(out / "cov.md"))
    return result, out


def test_coverage_of_the_samples_exits_0_and_prints_the_matrix(
        samples_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, _ = samples_run
    assert result.returncode == 0, result.stderr
    for words in ("cqlx coverage", "per target", "Detect Container CLI/API", "kql (mde)", "detection loss",
                  "techniques covered"):
        assert words in result.stdout
    # The Python matcher covers every technique but the one only the saved-search hunt has.
    covered, total = map(int, re.search(r"python \(falcon\)[^\n]*?(\d+)/(\d+)", result.stdout).groups())  # type: ignore[union-attr]
    assert covered == total - 1 and total >= 20
    assert "rdp_logon_admin.yml:17:31: detection loss on kql (mde): `LogonType=10`" in result.stdout


def test_each_layer_is_navigator_4_5_and_lists_the_seed_technique(
        samples_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = samples_run
    names = sorted(p.name for p in (out / "layers").iterdir())
    assert names == ["cqlx-coverage-comparison.json", "cqlx-coverage-kql-mde.json", "cqlx-coverage-python-falcon.json",
                     "cqlx-coverage-sigma-sigma.json", "cqlx-coverage-spl-splunk.json"]
    for name in names:
        layer = json.loads((out / "layers" / name).read_text(encoding="utf-8"))
        assert layer_problems(layer) == [], name
        assert layer["domain"] == "enterprise-attack" and layer["versions"]["layer"] == "4.5"
        seed = next(t for t in layer["techniques"] if t["techniqueID"] == "T1059.013")
        assert "Detect Container CLI/API" in seed["comment"] or name.endswith("comparison.json")
    kql = json.loads((out / "layers" / "cqlx-coverage-kql-mde.json").read_text(encoding="utf-8"))
    by_id = {t["techniqueID"]: t for t in kql["techniques"]}
    assert by_id["T1059.013"]["score"] == 1 and "color" not in by_id["T1059.013"]
    assert by_id["T1021.001"]["score"] == 0 and by_id["T1021.001"]["color"] == coverage_report.COLOURS["detection"]
    assert "LogonType" in by_id["T1021.001"]["comment"]
    sigma = json.loads((out / "layers" / "cqlx-coverage-sigma-sigma.json").read_text(encoding="utf-8"))
    seed_sigma = next(t for t in sigma["techniques"] if t["techniqueID"] == "T1059.013")
    assert seed_sigma["color"] == coverage_report.COLOURS["presentation"]
    comparison = json.loads((out / "layers" / "cqlx-coverage-comparison.json").read_text(encoding="utf-8"))
    seed_all = next(t for t in comparison["techniques"] if t["techniqueID"] == "T1059.013")
    assert seed_all["score"] == 2 and "sigma (sigma): presentation loss" in seed_all["comment"]


def test_json_and_markdown_reports(samples_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = samples_run
    data = json.loads((out / "cov.json").read_text(encoding="utf-8"))
    assert data["format"] == "cqlx-coverage/1" and data["attack"]["version"]
    assert data["techniques"]["T1059.013"]["name"] == "Container CLI/API"
    python = data["totals"]["python (falcon)"]
    assert python["exact"] == len(data["rules"]) - 2 and python["presentation"] == python["detection"] == 1
    text = (out / "cov.md").read_text(encoding="utf-8")
    assert "| target | exact | presentation loss | detection loss | failed | techniques covered |" in text
    assert "T1059.013 Container CLI/API" in text and "Detection losses and failures" in text


def test_the_html_is_self_contained(samples_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = samples_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)
    assert "id='matrix'" in page and "Content-Security-Policy" in page


def test_removing_the_seed_techniques_fails_on_gaps_against_the_baseline(
        samples_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    _, out = samples_run
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy)
    card = copy / "rules" / SEED_CARD.name
    text = card.read_text(encoding="utf-8")
    without = re.sub(r"^mitre:\n(  .*\n)+", "", text, flags=re.M)
    assert "\nmitre:" not in without
    card.write_text(without, encoding="utf-8")
    assert load_rule(card).meta.techniques == ()
    same = cqlx("coverage", str(SAMPLES), "--baseline", str(out / "cov.json"), "--fail-on-gaps")
    assert same.returncode == 0, same.stderr
    assert "no change since the baseline" in same.stdout
    result = cqlx("coverage", str(copy), "--baseline", str(out / "cov.json"), "--fail-on-gaps",
                  "--markdown", str(tmp_path / "diff.md"), "--json", str(tmp_path / "new.json"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gap: T1059.013 is lost since the baseline on kql (mde)" in result.stderr
    assert "kql (mde): lost T1059.013 Container CLI/API" in result.stdout
    assert "lost T1059.013" in (tmp_path / "diff.md").read_text(encoding="utf-8")
    lost = json.loads((tmp_path / "new.json").read_text(encoding="utf-8"))["baseline"]["lost"]
    assert lost["spl (splunk)"] == ["T1059.013"]


def test_fail_on_gaps_without_a_baseline_names_the_targets_that_miss_a_technique() -> None:
    result = cqlx("coverage", str(SAMPLES / "rules"), "--to", "spl,kql", "--fail-on-gaps")
    assert result.returncode == 1
    assert "gap: T1021.001 is not covered on kql (mde)" in result.stderr
    assert "on spl (splunk)" not in result.stderr
    assert cqlx("coverage", str(SEED_CARD), "--to", "spl,kql", "--fail-on-gaps").returncode == 0


def test_bad_input_is_a_message_and_exit_2(tmp_path: Path) -> None:
    unknown = cqlx("coverage", str(SEED_CARD), "--to", "spl,splunk")
    assert unknown.returncode == 2 and "unknown target 'splunk'" in unknown.stderr
    (tmp_path / "old.json").write_text("[1, 2]", encoding="utf-8")
    baseline = cqlx("coverage", str(SEED_CARD), "--baseline", str(tmp_path / "old.json"))
    assert baseline.returncode == 2 and "not a cqlx coverage report" in baseline.stderr
    missing = cqlx("coverage", str(tmp_path / "nothing"))
    assert missing.returncode == 2
    broken = tmp_path / "rules"
    broken.mkdir()
    (broken / "bad.cql").write_text("#event_simpleName=ProcessRollup2 | CommandLine = (", encoding="utf-8")
    shutil.copy(SEED_CARD, broken / SEED_CARD.name)
    result = cqlx("coverage", str(broken), "--json", str(tmp_path / "c.json"))
    assert result.returncode == 2 and "bad.cql:1:" in result.stderr
    rules = {r["key"]: r for r in json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["rules"]}
    assert {c["status"] for c in rules["bad.cql"]["cells"].values()} == {"failed"}
    assert rules["bad.cql"]["error"]["line"] == 1


# ---------------------------------------------------------------- the HTML in a real browser


def chromium() -> str:
    """The Chromium binary; skip when there is none, unless CQLX_REQUIRE_CHROMIUM=1 (set by .ci/run)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CQLX_REQUIRE_CHROMIUM") == "1":
        pytest.fail("Chromium is required here (apt-get install chromium)")
    pytest.skip("no chromium on PATH (apt-get install chromium)")


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages Chromium logged."""
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
                             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom",
                             page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_chromium_console_capture_sees_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('seen'); missing();</script></body></html>",
                    encoding="utf-8")
    _, console = render(page, tmp_path / "profile")
    assert any("seen" in line for line in console) and any("Uncaught ReferenceError" in line for line in console)


def test_the_html_renders_in_chromium_with_the_matrix_and_no_console_errors(
        samples_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    _, out = samples_run
    dom, console = render(out / "report.html", tmp_path / "profile")
    assert console == []
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None  # the script ran to its end, and nothing was thrown
    assert 'data-ready="1"' in body.group(0) and "data-errors" not in body.group(0)
    matrix = re.search(r'<table id="matrix">(.*?)</table>', dom, re.S)
    assert matrix is not None
    rows = re.findall(r"<tr data-search=", matrix.group(1))
    assert len(rows) == len(list(SAMPLES.rglob("*.yml")))
    assert "Detect Container CLI/API" in matrix.group(1) and 'data-status="detection"' in matrix.group(1)
    assert f'<span id="shown">{len(rows)}</span>' in dom
    heat = re.findall(r'<section class="heatmap"[^>]*>', dom)
    assert len(heat) == 4 and ['hidden=""' in h for h in heat] == [False, True, True, True]  # the first target
    assert 'data-technique="T1059.013"' in dom
