"""One entry point for every target, and the one policy for lossy conversion.

``convert_query`` runs the emitter of the target language with the chosen profile and returns the
output with its diagnostics; ``apply_policy`` decides: under ``error`` (the default) any detection
loss refuses the conversion with an :class:`UnsupportedError` naming every construct, its line and
column, the target and the reason; presentation loss is always a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cqlx import ir
from cqlx.ast import Span
from cqlx.emit.base import DETECTION, Diagnostic, RuleMeta
from cqlx.errors import CqlError, UnsupportedError
from cqlx.frozen import Frozen, record
from cqlx.passes import self_joins_as_joins
from cqlx.profiles import DEFAULT_PROFILE, load_profile

TARGETS = ("spl", "kql", "sigma", "python", "cql")
EXTENSIONS = {"spl": ".spl", "kql": ".kql", "sigma": ".yml", "python": ".py", "cql": ".cql"}
POLICIES = ("error", "warn", "ignore")


@record
class Conversion(Frozen):
    """A converted rule: the target's text and the diagnostics of what it could not say."""

    target: str
    profile: str
    output: str
    diagnostics: tuple[Diagnostic, ...]

    @property
    def detection_loss(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.kind == DETECTION)

    def refused(self, policy: str) -> bool:
        """Whether ``policy`` refuses the conversion: detection loss under ``error``; under any
        policy, when nothing valid in the target could be written (``Diagnostic.unwritable``)."""
        lost = self.detection_loss
        return bool(lost) and (policy == "error" or any(d.unwritable for d in lost))

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.target, "." + self.target.replace(":", "-") + ".txt")


def convert_query(query: ir.Query, target: str, profile: str | None = None, meta: RuleMeta | None = None,
                  query_text: str = "") -> Conversion:
    """Convert an IR query; the diagnostics say what the target could not express."""
    try:
        return _convert(query, target, profile, meta, query_text)
    except RecursionError:
        raise CqlError(f"the query is nested too deeply to convert to {target}; split it into pipeline stages",
                       source=query_text or None) from None


def _convert(query: ir.Query, target: str, profile: str | None, meta: RuleMeta | None,
             query_text: str) -> Conversion:
    if target not in TARGETS:
        raise CqlError(f"unknown target {target!r}; accepted: " + ", ".join(TARGETS))
    if target == "cql":
        from cqlx.emit.cql import CqlGenerator, identity_profile

        # LogScale is where the field names come from: no profile renames them.
        if profile:
            raise CqlError(f"--to cql writes LogScale's own field names; it takes no profile (got {profile!r})")
        cql = CqlGenerator(query, identity_profile(), meta or RuleMeta())
        return Conversion(target, cql.profile.name, cql.generate(), tuple(cql.diagnostics))
    chosen = load_profile(profile or DEFAULT_PROFILE[target])
    if chosen.language != target:
        raise CqlError(f"profile {chosen.name} is for {chosen.language}, not {target}")
    meta = meta or RuleMeta()
    query = self_joins_as_joins(query)  # the targets have joins, not self-join filters
    if target == "python":
        from cqlx.emit.python import ENTRY_POINTS, emit_python
        from cqlx.emit.python_module import rule_part

        diagnostics: list[Diagnostic] = []
        source = emit_python(query, meta.title, query_text, chosen, diagnostics)
        # Only the rule's part can fail to compile (CPython refuses ~200 nested parentheses): the
        # runtime before it is cqlx's own runtime.py, and compiling it again cost 80% of the check.
        # The entry points after it are the same text for every rule.
        try:
            compile(rule_part(source).removesuffix(ENTRY_POINTS), "<cqlx matcher>", "exec")
        except SyntaxError:  # CPython's parser refuses ~200 nested parentheses
            raise CqlError("the query is nested too deeply for a Python module", source=query_text or None) from None
        return Conversion(target, chosen.name, source, tuple(diagnostics))
    if target == "kql":
        from cqlx.emit.kql import KqlGenerator

        kql = KqlGenerator(query, chosen, meta)
        return Conversion(target, chosen.name, kql.generate(), tuple(kql.diagnostics))
    if target == "spl":
        from cqlx.emit.spl import SplGenerator

        spl = SplGenerator(query, chosen, meta)
        return Conversion(target, chosen.name, spl.generate(), tuple(spl.diagnostics))
    from cqlx.emit.sigma import SigmaGenerator

    sigma = SigmaGenerator(query, chosen, meta)
    return Conversion(target, chosen.name, sigma.generate(), tuple(sigma.diagnostics))


# Backends whose plugin package is not named after them.
_BACKEND_PACKAGES = {"lucene": "pysigma-backend-elasticsearch", "eql": "pysigma-backend-elasticsearch",
                     "esql": "pysigma-backend-elasticsearch", "elasticsearch": "pysigma-backend-elasticsearch",
                     "log_scale": "pysigma-backend-crowdstrike", "splunk_spl2": "pysigma-backend-splunk"}


def sigma_backends() -> dict[str, Any]:
    """The pySigma backend plugins installed here, by name (splunk, kusto, lucene, ...)."""
    from sigma.plugins import InstalledSigmaPlugins

    backends: dict[str, Any] = dict(InstalledSigmaPlugins.autodiscover().backends)
    return backends


def through_sigma_backend(conversion: Conversion, backend: str, pipelines: tuple[str, ...] = ()) -> Conversion:
    """Convert cqlx's Sigma output with an installed pySigma backend (``--to sigma:BACKEND``), so
    every platform pySigma supports is one flag away."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.plugins import InstalledSigmaPlugins

    plugins = InstalledSigmaPlugins.autodiscover()
    backend_class: Any = plugins.backends.get(backend)
    if backend_class is None:
        installed = ", ".join(sorted(plugins.backends)) or "none"
        package = _BACKEND_PACKAGES.get(backend, f"pysigma-backend-{backend}")
        raise CqlError(f"no pySigma backend {backend!r} is installed (installed: {installed}); "
                       f"its plugin is probably: pip install {package}")
    chosen = []
    for name in pipelines:
        pipeline = plugins.pipelines.get(name)
        if pipeline is None:
            raise CqlError(f"no pySigma pipeline {name!r}; installed: " + ", ".join(sorted(plugins.pipelines)))
        chosen.append(pipeline() if callable(pipeline) else pipeline)
    try:
        from sigma.processing.pipeline import ProcessingPipeline

        combined = sum(chosen, ProcessingPipeline()) if chosen else None
        engine = backend_class(processing_pipeline=combined) if combined is not None else backend_class()
        queries = engine.convert(SigmaCollection.from_yaml(conversion.output))
    except SigmaError as error:
        raise CqlError(f"pySigma backend {backend} cannot convert the rule: {error}") from None
    text = "\n\n".join(str(q) for q in queries) + "\n"
    return Conversion(f"sigma:{backend}", conversion.profile, text, conversion.diagnostics)


def apply_policy(conversion: Conversion, policy: str = "error", source: str | None = None,
                 where: Callable[[Span], str] | None = None) -> Conversion:
    """Refuse a conversion that loses detection logic (``error``), or let it through. ``where``
    names a diagnostic's position (a rule file's ``path:line:column``; by default its line and
    column in the query)."""
    if policy not in POLICIES:
        raise CqlError(f"unknown lossy-conversion policy {policy!r}; accepted: " + ", ".join(POLICIES))
    if conversion.refused(policy):
        lost = conversion.detection_loss
        first = lost[0]
        lines = "\n".join(f"  - {where(d.span)}: {d.describe()}" if where and d.span.line else f"  - {d}"
                           for d in lost)
        if any(d.unwritable for d in lost):
            message = f"cannot write {first.target} for this rule, whatever --on-lossy says:\n{lines}"
        else:
            message = (f"cannot convert to {first.target} without changing which events match "
                       f"(--on-lossy warn writes it anyway):\n{lines}")
        raise UnsupportedError(message, first.span, source)
    return conversion


def convert_text(text: str, to: str, profile: str | None = None, policy: str = "error",
                 meta: RuleMeta | None = None, params: Mapping[str, str] | None = None,
                 saved_searches: Mapping[str, str] | None = None) -> Conversion:
    from cqlx.api import parse

    query = parse(text, params, saved_searches)
    return apply_policy(convert_query(query, to, profile, meta, text), policy, text)
