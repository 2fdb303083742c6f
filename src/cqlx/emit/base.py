"""What every emitter shares: diagnostics for lossy conversion and field mapping through a profile.

As in sqlglot, an emitter never drops a construct silently: it records it with
:meth:`Generator.unsupported` (the span, the target, the reason and whether it is *presentation*
loss, which leaves the matching events unchanged, or *detection* loss), and one policy decides at
the end (:mod:`cqlx.convert`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from cqlx import ir
from cqlx.ast import NO_SPAN, Span
from cqlx.frozen import Frozen, record
from cqlx.functions import GROUP_LIMIT_DEFAULT
from cqlx.passes import (
    atoms,
    decisive_steps,
    extraction_as_test,
    loss_kind_of,
    nested_steps,
    pred_fields,
    shadowed_fields,
    step_reads,
    step_unextracted,
    step_writes,
)
from cqlx.paths import DRIVE_PATH, drive_fields, extract_loss, loss, message, unix_fields, windows
from cqlx.profiles import EventType, NativeEvents, Profile

PRESENTATION = "presentation"
DETECTION = "detection"


def shadowing_message(written: str, read: str, profile: str) -> str:
    """Why a rule that writes the column another field it reads is held in cannot be converted."""
    return (f"the rule writes {written}, and then reads {read}, which profile {profile} holds in the column "
            f"{written}: the assignment would overwrite the event's {read} (rename the field the rule writes)")


def unextracted_message(groups: tuple[str, ...]) -> str:
    """Why a named-group regex under an ``or`` or in free text extracts nothing in cqlx."""
    return (f"a regex with named groups ({', '.join(groups)}) under an or, or in free text: cqlx tests it but "
            "extracts no field there (syntax-filters: an or's operands cannot be a regex with named groups; free "
            "text extracts from whichever field matches first)")


@record
class Diagnostic(Frozen):
    """What a conversion could not keep: presentation or detection loss, where and why."""

    kind: str  # presentation | detection
    target: str
    message: str
    span: Span = NO_SPAN
    # The output fields a presentation loss shows differently (``cqlx test`` does not compare them).
    fields: tuple[str, ...] = ()
    # No valid output can be written (a KQL query without a table, a Sigma rule without a
    # logsource): refused under every --on-lossy policy, not only `error`.
    unwritable: bool = False

    def describe(self) -> str:
        label = "detection loss" if self.kind == DETECTION else "presentation loss"
        return f"{label} on {self.target}: {self.message}"

    def __str__(self) -> str:
        where = f"line {self.span.line}, column {self.span.column}: " if self.span.line else ""
        return where + self.describe()


#: Fields every Falcon event has: they say nothing about which event type a rule reads.
_EVERY_EVENT = frozenset({"event_simpleName", "event_platform", "aid", "aip", "cid", "ComputerName", "timestamp",
                          "name", "id", "ConfigBuild", "ConfigStateHash", "EffectiveTransmissionClass",
                          "Entitlements", "EventOrigin"})


def _other_terms(search: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(term for term in search if term[0] != "event_simpleName")


@record
class RuleMeta(Frozen):
    """What a rule card says about the rule, beyond its query."""

    title: str = ""
    id: str = ""
    description: str = ""
    author: str = ""
    date: str = ""
    status: str = ""
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass
class Generator:
    """Base of the language emitters: profile lookups and the diagnostics list."""

    query: ir.Query
    profile: Profile
    meta: RuleMeta = field(default_factory=RuleMeta)
    target: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    computed: set[str] = field(default_factory=set)  # fields the query has assigned so far
    subject: str = "the rule"  # what the messages call the query (a join's subquery is not the rule)
    counters: dict[str, int] = field(default_factory=dict)  # next_number(): scratch names made so far

    def __post_init__(self) -> None:
        if not self.target:
            self.target = f"{self.profile.language} ({self.profile.name})"
        self.answer_repository()
        self.read_types: tuple[str, ...] = ()
        self.event = self.resolve_event_type()
        self.answer_event_type()
        fields = self.event.fields if self.event else {}
        self.drive_paths = drive_fields(fields)
        # Unix paths (a leading filter requires a '/'), written alike everywhere: looked for only
        # where a column holds paths from the drive letter.
        self.unix_paths = unix_fields(self.query, frozenset(fields)) if self.drive_paths else frozenset()
        self.needed_after = decisive_steps(self.query)
        self.check_paths()
        self.check_shadowing()
        self.check_folding()
        self.check_branch_repeats(self.query.steps, False)

    def next_number(self, counter: str) -> int:
        """The next number (1, 2, ...) of one of the generator's counters, for scratch names
        (``_cqlx_lookup1``, ``_cqlx_case2``...) that must not meet another of their kind."""
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]

    def answer_repository(self) -> None:
        """Leading tests on ``#repo`` that the profile's ``repositories:`` answer leave the rule;
        one that none of them passes is detection loss (the rule reads other data)."""
        from cqlx.repository import REPO_TAG, answer_tag

        self.query, refused = answer_tag(self.query, REPO_TAG, self.profile.repositories)
        held = ", ".join(self.profile.repositories)
        for pred in refused:
            self.unsupported(f"the rule reads LogScale repositories (#repo) other than those whose events profile "
                             f"{self.profile.name} holds ({held})", pred.span)

    def answer_event_type(self) -> None:
        """When every record the target reads is of one Falcon event type (one table, logsource or
        search for one type), the rule's later tests on ``#event_simpleName`` are answered with it
        (:func:`cqlx.repository.settle_tag`): a case branch for another type is never taken."""
        from cqlx.repository import EVENT_TYPE_TAGS, settle_tag

        if len(self.read_types) == 1 and self.profile.language != "python":
            self.query = replace(self.query, steps=settle_tag(self.query.steps, EVENT_TYPE_TAGS, self.read_types[0]))

    def check_paths(self) -> None:
        """Tests on a column that holds Windows paths from the drive letter (profile transform
        ``drive_path``) where Falcon's field holds them from the volume's device: each one that may
        read the two forms differently is detection loss (:mod:`cqlx.paths`)."""
        def column(field: str, computed: set[str]) -> str | None:
            mapped = None if field in computed | self.unix_paths else self.profile.field(self.event, field)
            return mapped.name if mapped is not None and mapped.transform == DRIVE_PATH else None

        def report(field: str, target: str, why: str, span: Span) -> None:
            self.unsupported(message(field, target, self.profile.name, why), span)

        def test(pred: ir.Pred, computed: set[str]) -> None:
            if isinstance(pred, ir.And | ir.Or):
                for item in pred.items:
                    test(item, computed)
            elif isinstance(pred, ir.Not):
                test(pred.item, computed)
            else:
                for field in sorted(pred_fields(pred)):
                    target = column(field, computed)
                    why = loss(pred) if target else None
                    if target and why:
                        report(field, target, why, pred.span)

        def visit(steps: tuple[ir.Step, ...], computed: set[str]) -> None:
            for step in steps:
                if isinstance(step, ir.Filter):
                    test(step.pred, computed)
                elif isinstance(step, ir.Signal):
                    test(step.condition, computed)
                elif isinstance(step, ir.Extract):
                    target = column(step.field, computed)
                    why = extract_loss(step.pattern, step.flags) if target else None
                    if target and why:
                        report(step.field, target, why, step.span)
                elif isinstance(step, ir.Case):
                    for branch in step.branches:
                        visit(branch.steps, set(computed))
                elif isinstance(step, ir.Aggregate | ir.GroupTail):
                    for key in step.keys:  # the groups are the same files; the rows show the other form
                        target = column(key, computed)
                        if target:
                            self.shown_as_drive_path(key, target, step.span)
                computed |= step_writes(step)

        if self.drive_paths and self.profile.language != "python" and windows(self.query.source.platforms):
            visit(self.query.steps, set())

    def check_branch_repeats(self, steps: tuple[ir.Step, ...], inside: bool) -> None:
        """``regex(repeat=true)`` inside a case branch: one event of each match there, which no
        target's branch can say (a branch computes values for the one row it is given)."""
        if self.profile.language == "cql":  # LogScale itself
            return
        for step in steps:
            if isinstance(step, ir.Extract) and step.each and inside:
                self.unsupported(BRANCH_REPEAT, step.span)
            elif isinstance(step, ir.Case):
                for branch in step.branches:
                    self.check_branch_repeats(branch.steps, True)

    def check_folding(self) -> None:
        """A case-insensitive test of letters beyond ASCII (``/ünï/i``, ``in(..., ignoreCase=true)``):
        LogScale does not document how its engine folds them, cqlx's matcher assumes Java's
        defaults (ASCII folding in a regex, ``equalsIgnoreCase`` elsewhere), and each SIEM folds
        them by its own rules (RE2's ``(?i)`` folds Unicode letters; PCRE's, without UCP, ASCII
        letters; Sigma leaves it to the backend): which events match may differ. Letters within
        ASCII fold alike everywhere (the other way round, a value's non-ASCII letter such as the
        Kelvin sign against ``/k/i``, cannot be seen in the rule: README, "Semantics")."""
        if self.profile.language in ("python", "cql"):  # the reference's semantics; LogScale itself
            return
        for pred in atoms(self.query):
            letters = _beyond_ascii(_folded_texts(pred))
            if letters:
                self.unsupported(f"a case-insensitive test of {letters!r} (letters beyond ASCII): "
                                 f"LogScale does not document how it folds them, and {self.target} folds "
                                 "them by its own rules, so which events match may differ", pred.span)
        # replace(regex, flags=i): the same folding decides what the value becomes, where a field is
        # assigned it (the loss of that assignment) or a test() compares it (detection).
        # The field a value may differ in is named (cqlx test then leaves it out where only shown).
        calls: list[tuple[ir.Func, str, str, tuple[str, ...]]] = [
            (call, f"{step.field} may differ", self.loss(step), (step.field,))
                 for step in nested_steps(self.query.steps)
                 if isinstance(step, ir.Eval) for call in _calls(step.expr, "replace")]
        calls += [(call, "which events match may differ", DETECTION, ()) for pred in atoms(self.query)
                  if isinstance(pred, ir.ExprTest) for side in (pred.left, pred.right)
                  for call in _calls(side, "replace")]
        for call, effect, kind, fields in calls:
            pattern, flags = call.args[1:2], call.args[3:4]  # valuefns: (field, regex, with, flags)
            ignoring = any(isinstance(f, ir.Lit) and "i" in str(f.value) for f in flags)
            letters = _beyond_ascii(tuple(a.value for a in pattern if isinstance(a, ir.Lit)
                                          and isinstance(a.value, str))) if ignoring else ""
            if letters:
                self.unsupported(f"replace() ignoring case of {letters!r} (letters beyond ASCII): LogScale does "
                                 f"not document how it folds them, and {self.target} folds them by its own rules, "
                                 f"so {effect}", call.span, kind, fields)

    def check_shadowing(self) -> None:
        """A field the rule writes under the name the profile gives a Falcon field it reads later:
        the target's assignment would overwrite the column that test reads (detection loss)."""
        def column_of(name: str) -> str | None:
            mapped = self.profile.field(self.event, name)
            return mapped.name if mapped is not None else None

        for written, read, span, shown in shadowed_fields(self.query.steps, column_of):
            self.unsupported(shadowing_message(written, read, self.profile.name), span,
                             PRESENTATION if shown else DETECTION)

    def decisive(self, step: ir.Step) -> frozenset[str]:
        """The fields that decide the rows after ``step`` (:func:`cqlx.passes.decisive_steps`, the
        steps of ``case`` branches included); for a step not found (a subquery's), any field."""
        return next((needed for s, needed in self.needed_after if s is step), frozenset({"*"}))

    def loss(self, step: ir.Step, writes: frozenset[str] | None = None) -> str:
        """The kind of loss when the target cannot compute what ``step`` writes: detection when a
        later step decides rows on it, else presentation."""
        written = step_writes(step) if writes is None else writes
        return DETECTION if loss_kind_of(written, self.decisive(step)) else PRESENTATION

    def lose(self, message: str, span: Span) -> None:
        """What a value function cannot say in the target: detection loss when a later step decides
        rows on the field the current assignment (``self.current``) writes, or when a filter
        computes it; else presentation, naming the fields left without their value."""
        current: ir.Step | None = getattr(self, "current", None)
        if current is None:
            self.unsupported(message, span, DETECTION)
        else:
            self.unsupported(message, span, self.loss(current), tuple(sorted(step_writes(current))))

    def opaque(self, step: ir.Opaque) -> None:
        """A stage cqlx cannot convert (ir.Opaque): reported, never dropped silently."""
        kind = DETECTION if step.effect != ir.ENRICHES else self.loss(step)
        suffix = "" if kind == DETECTION else "; its fields are left out (nothing later tests them)"
        self.unsupported(step.reason + suffix, step.span, kind)

    def lookup_lost(self, step: ir.Lookup | ir.Join, why: str, part: str = "all") -> None:
        """What a target cannot do of a ``match()``: ``all`` of it (detection loss when it filters or
        a later step tests what it writes, else presentation: its columns are left out), or only
        the ``columns`` it writes (the filter is kept)."""
        written = frozenset(step.writes) if step.writes is not None else frozenset({"*"})
        kind = DETECTION if part == "all" and step.filters else self.loss(step, written)
        suffix = "; its columns are left out (nothing later tests them)" if kind == PRESENTATION else ""
        what = f"match(file={step.file!r})" if isinstance(step, ir.Lookup) else f"{step.origin}()"
        self.unsupported(f"{what}: {why}{suffix}", step.span, kind)

    def opaque_test(self, pred: ir.OpaqueTest) -> None:
        self.unsupported(pred.reason, pred.span, DETECTION)

    def array_test(self, pred: ir.ArrayAny) -> None:
        """array:regex() and array:contains(): LogScale's arrays are fields ``a[0]``, ``a[1]``...,
        which no profile maps (a target holds arrays its own way, if at all)."""
        function = "array:regex" if isinstance(pred.test, ir.Regex) else "array:contains"
        self.unsupported(f"{function}() tests the elements of {pred.array}[] ({pred.array}[0], {pred.array}[1], ...), "
                         f"which profile {self.profile.name} has no counterpart for", pred.span, DETECTION)

    def unextracted(self, step: ir.Step) -> None:
        """Report a named-group regex the step tests without extracting (passes.unextracted_groups):
        detection loss when a later step decides on its fields, else presentation."""
        found = step_unextracted(step)
        if found is not None:
            groups = frozenset(found[1])
            # The step may read them itself (`a=/(?<g>x)/ or b=1 g=x`): then it decides on them. Free text
            # reads every field, but of the event as it came in: not these.
            itself = loss_kind_of(groups, step_reads(step) - {"*"}) and (
                isinstance(step, ir.Filter) or self.loss(step) == DETECTION)
            self.unsupported(unextracted_message(found[1]), step.span,
                             DETECTION if itself else self.loss(step, groups))

    def group_limit_kept(self, step: ir.Aggregate | ir.GroupTail) -> None:
        """A groupBy() limit other than LogScale's default, for a target that keeps every group:
        presentation loss (LogScale keeps that many groups and warns)."""
        if step.limit is not None and step.limit != GROUP_LIMIT_DEFAULT:
            self.unsupported(f"groupBy(limit={step.limit}): {self.profile.language.upper()} keeps every group, where "
                             f"LogScale keeps {step.limit} and warns", step.span, PRESENTATION)

    def case_without_extraction(self, step: ir.Case) -> ir.Case:
        """The case with its field extractions reduced to their tests, for a target that expands
        ``case`` into tests and assignments; the fields they write are reported as lost."""
        self.case_unextracted(step)
        rewritten, lost, read_inside = extraction_as_test(step)
        if lost:
            kind = DETECTION if read_inside else self.loss(step, frozenset(lost))
            self.unsupported(f"a regex inside case {{ }} extracts {', '.join(lost)}; {self.target} keeps its test but "
                             "cqlx does not extract fields inside case branches", step.span, kind)
        return rewritten

    def case_unextracted(self, step: ir.Case) -> None:
        """:meth:`unextracted` for the filters inside a case's branches: detection loss when a later
        step of the branch, or after the case, reads the groups."""
        for branch in step.branches:
            for index, inner in enumerate(branch.steps):
                found = step_unextracted(inner)
                if found is None:
                    continue
                groups = frozenset(found[1])
                later = frozenset().union(*(step_reads(s) for s in branch.steps[index + 1:]))
                kind = DETECTION if loss_kind_of(groups, later) else self.loss(step, groups)
                self.unsupported(unextracted_message(found[1]), inner.span, kind)

    def optional_groups(self, step: ir.Extract, why: str) -> None:
        """Report the groups a match may leave empty or out (regexes.group_is_optional) that a later
        step decides on: ``why`` says what the target does not tell apart."""
        from cqlx.regexes import group_is_optional

        for group in step.groups:
            if group_is_optional(step.pattern, step.flags, group) and self.loss(step, frozenset({group})) == DETECTION:
                self.unsupported(f"the regex group {group} may capture nothing or take no part in a match, and a "
                                 f"later step tests it: {why}", step.span)

    def unsupported(self, message: str, span: Span = NO_SPAN, kind: str = DETECTION,
                    fields: tuple[str, ...] = (), unwritable: bool = False) -> None:
        """Record what the target cannot say; ``unwritable``: nor can anything the target loads be
        written in its place (refused whatever the lossy policy)."""
        self.adopt([Diagnostic(kind, self.target, message, span, fields, unwritable=unwritable)])

    def adopt(self, diagnostics: list[Diagnostic]) -> None:
        """Diagnostics as the rule's own, each (kind and message) once: this generator's, or a
        subquery's (a join's subsearch), marks kept."""
        for diagnostic in diagnostics:
            if not any(d.kind == diagnostic.kind and d.message == diagnostic.message for d in self.diagnostics):
                self.diagnostics.append(diagnostic)

    def unwritable(self, message: str) -> None:
        """Nothing valid in the target can be written: the rule's first detection loss (why), with
        what the target cannot do without it; refused whatever the lossy policy."""
        if any(d.unwritable for d in self.diagnostics):
            return
        at = next((i for i, d in enumerate(self.diagnostics) if d.kind == DETECTION), None)
        if at is None:
            self.diagnostics.insert(0, Diagnostic(DETECTION, self.target, message, unwritable=True))
        else:
            why = self.diagnostics.pop(at)
            self.diagnostics.insert(0, Diagnostic(DETECTION, self.target, f"{why.message}; {message}", why.span,
                                                  why.fields, unwritable=True))

    def resolve_event_type(self) -> EventType | None:
        types = self.query.source.event_types
        if not types:
            default = self.profile.default_event()
            if default is not None:
                return default
            pattern = self.query.source.types_pattern
            if pattern is not None and self.profile.language != "python":
                return self.event_type_by_name(pattern)
            if self.profile.language != "python":
                inferred, why = self.event_type_by_fields()
                if inferred is None and not why:
                    inferred, why = self.event_type_by_native_fields()
                if inferred is not None:
                    return inferred
                self.unsupported(f"{self.subject} selects no event type (#event_simpleName=...); "
                                 f"{self.profile.name} needs one to choose a table or logsource{why}")
            return None
        return self.one_event_type(types)

    def event_type_by_fields(self) -> tuple[EventType | None, str]:
        """For a rule that names no event type: the event types the profile lists that carry every
        field the rule reads from events, when they are all read from one table or logsource (a
        presentation note says which). Otherwise None, and why, for the refusal's message."""
        read = {f for f in self.event_fields(deciding=True) if f[:1] not in ("#", "@", "*") and f not in _EVERY_EVENT}
        # A field no event type of the profile maps says nothing about which one the rule reads;
        # the emitter reports it on its own (a missing mapping), once the table is chosen.
        events = self.profile.event_types.values()
        read = {f for f in read if any(self.profile.field(t, f) for t in events)}
        if not read:
            return None, ""
        fields = ", ".join(sorted(read))
        names = [n for n, t in self.profile.event_types.items() if all(self.profile.field(t, f) for f in read)]
        if not names:
            return None, f" (no event type it lists has every field {self.subject} decides on: {fields})"
        where = {self._place(self.profile.event_types[n]) for n in names}
        if len(where) > 1:
            return None, (f" (the fields {self.subject} decides on, {fields}, are those of {', '.join(names)}, which "
                          f"it reads from {', '.join(sorted(where))})")
        self.unsupported(f"{self.subject} selects no event type (#event_simpleName=...): of the event types profile "
                         f"{self.profile.name} lists, only {', '.join(names)} carry every field it decides on that the "
                         f"profile maps ({fields}), "
                         f"so it searches {where.pop()}; an event of a type the profile does not list is not searched",
                         kind=PRESENTATION)
        return self.one_event_type(tuple(names)), ""

    def event_type_by_native_fields(self) -> tuple[EventType | None, str]:
        """For a rule that names no event type and decides on none of the Falcon fields the profile
        maps: the logsource of the profile's native events (``native_events:``, Sysmon's for Sigma)
        that holds every event able to match, with the fewest others (a presentation note says
        which); the rule's fields keep their names there. Otherwise None, and why, for the
        refusal's message."""
        native = self.profile.native
        platforms = self.query.source.platforms
        if native is None or any(self.profile.platforms.get(p) != native.product for p in platforms):
            return None, ""
        every = tuple(native.events)
        computed: set[str] = set()
        able = set(every)
        tested: set[str] = set()
        for step in self.query.steps:  # the leading filters: what every result's event passed
            if isinstance(step, ir.Filter):
                able &= native_carriers(step.pred, native, computed)
                tested |= {f for f in pred_fields(step.pred) - computed if native.carriers(frozenset({f}))}
            elif not isinstance(step, ir.Extract):
                break
            computed |= step_writes(step)
        if len(able) == len(every):
            return None, ""
        carriers = tuple(e for e in every if e in able)
        if not carriers:
            return None, f" (no {native.source} event carries the fields its filters require)"
        logsource = native.logsource_of(carriers)
        if logsource is not None:
            where = (("category", logsource), ("product", native.product))
            searched = f"logsource category {logsource}, product {native.product}"
        elif native.service is not None:
            # No one category holds them: the service holds every event (sigma taxonomy: windows/sysmon).
            where = (("product", native.product), ("service", native.service))
            searched = (f"logsource product {native.product}, service {native.service} (every {native.source} event: "
                        "no one category holds them)")
        else:
            return None, (f" (of {native.source}'s events, those its filters can pass are {native.describe(carriers)}, "
                          "which no one logsource holds)")
        self.unsupported(f"{self.subject} selects no event type (#event_simpleName=...): it tests "
                         f"{native.source}'s fields ({', '.join(sorted(tested))}), and of its events only "
                         f"{native.describe(carriers)} can pass its filters, so it searches {searched}, under the same "
                         "field names; an event from another source with these fields is not searched",
                         kind=PRESENTATION)
        fields = {f: native.field_map(f) for f in sorted(native.fields_of(logsource))}
        return EventType(f"{native.source} {logsource or native.service}", logsource=where, fields=fields,
                         native=True), ""

    def event_fields(self, deciding: bool = False) -> set[str]:
        """The fields the rule reads from events (not those it computes first); ``deciding``: only
        those that decide what matches (not what select/table/sort only show or order)."""
        computed: set[str] = set()
        read: set[str] = set()
        for step in self.query.steps:
            if not (deciding and isinstance(step, ir.Project | ir.Order)):
                read |= step_reads(step) - computed
            computed |= step_writes(step)
        return read

    @staticmethod
    def _place(event: EventType) -> str:
        """Where the target keeps an event type's records, in words."""
        if event.table:
            return event.table
        parts = [*(f"{k}: {v}" for k, v in event.logsource), *(f"{k}={v}" for k, v in _other_terms(event.search))]
        return "{" + ", ".join(parts) + "}" if parts else event.name

    def event_type_by_name(self, pattern: ir.Regex) -> EventType | None:
        """The event types a regex on ``#event_simpleName`` selects, as the profile knows them:
        those it declares whose names the regex matches. The regex is then answered by the table or
        logsource, so it leaves the rule's filters (as an equality on the type does)."""
        from cqlx.regexes import python_compiled, python_flags, to_python

        compiled = python_compiled(to_python(pattern.pattern), python_flags(pattern.flags))
        if isinstance(compiled, str):
            self.unsupported(f"the regex /{pattern.pattern}/ on #event_simpleName does not compile", pattern.span)
            return None
        search = compiled.search
        # Entries named with a leading * (a profile's default and unlisted-type templates) are not types.
        names = tuple(n for n in [*self.profile.event_types, *self.profile.absent]
                      if not n.startswith("*") and search(n))
        if not names:
            self.unsupported(f"no event type profile {self.profile.name} declares has a name the regex "
                             f"/{pattern.pattern}/ on #event_simpleName matches; {self.profile.name} needs one to "
                             "choose a table or logsource", pattern.span)
            return None
        self.unsupported(f"#event_simpleName=/{pattern.pattern}/{pattern.flags} selects event types by name: "
                         f"{self.profile.name} searches those it declares whose names match ({', '.join(names)}); "
                         "an event type it does not declare is not searched", pattern.span, PRESENTATION)
        self.query = replace(self.query, steps=_without(self.query.steps, pattern))
        return self.one_event_type(names)

    def one_event_type(self, types: tuple[str, ...]) -> EventType | None:
        """The one table or logsource the rule's event types share in the profile."""
        resolved = [self.profile.event_type(t) for t in types]
        unlisted = [r for r in resolved if r is not None and r.unlisted]
        if unlisted:
            read_as = unlisted[0].note or "its unlisted_event_types entry"
            self.unsupported(f"event type {', '.join(r.name for r in unlisted)} is not one profile "
                             f"{self.profile.name} lists: read as {read_as}; an event of the type the target does "
                             "not hold is not found", kind=PRESENTATION)
        missing = [t for t, r in zip(types, resolved, strict=True) if r is None]
        known = [r for r in resolved if r is not None]
        if missing:
            # With one of the rule's event types mapped, the rest only narrows which records of the
            # same activity are read; with none, the target has nothing to search.
            reasons = [self.profile.absent_reason(t) for t in missing]
            why = "; ".join(f"{t}: {r}" for t, r in zip(missing, reasons, strict=True) if r)
            self.unsupported(f"event type {', '.join(missing)} has no counterpart in profile {self.profile.name}"
                             + (f" ({why})" if why else ""), kind="presentation" if known else DETECTION)
        if not known:
            return None
        for lacking in (r for r in known if r.lacks):
            self.unsupported(f"event type {lacking.name}: the records profile {self.profile.name} reads leave out "
                             f"{lacking.lacks}, which LogScale's events hold")
        first = known[0]
        used = self.event_fields() if known[1:] else set()
        # A search that differs only in event_simpleName is one search: the SPL emitter ORs the types.
        if any(r.table != first.table or r.logsource != first.logsource
               or _other_terms(r.search) != _other_terms(first.search) for r in known[1:]):
            self.unsupported("the rule's event types map to different tables or logsources in profile "
                             f"{self.profile.name}; cqlx converts one at a time")
        elif any(self._named_apart(first, r, used) for r in known[1:]):
            # e.g. outbound and inbound connections in one table, with the remote end in other columns
            self.unsupported("the rule's event types share a table in profile "
                             f"{self.profile.name} but name the fields it uses differently there")
        elif any(r.match != first.match for r in known[1:]):
            # Their records in the shared table are those of any of them (outbound and inbound
            # connections: every ActionType of both), not the first type's alone.
            merged = _merged_match([r.match for r in known])
            if merged is None:
                self.unsupported(f"the rule's event types share a table in profile {self.profile.name} but their "
                                 "records there are told apart by different fields; cqlx converts one at a time")
            else:
                first = replace(first, match=merged)
        self.read_types = () if unlisted else tuple(dict.fromkeys(r.name for r in known))
        return first

    def _named_apart(self, first: EventType, other: EventType, used: set[str]) -> bool:
        """Whether two event types of one table map a field the rule uses (``used``) differently
        (any field, when the rule has a stage that may read every field)."""
        if "*" in used:
            return first.fields != other.fields
        return any(self.profile.field(first, f) != self.profile.field(other, f) for f in used)

    def shown_time_loss(self, step: ir.Step, output: str) -> str:
        """The loss of an event time an aggregation keeps in the target's own shape (not LogScale's
        epoch milliseconds): detection when a later step reads it (what it computes from it differs
        too), else :meth:`loss`."""
        return DETECTION if self.read_later(step, output) else self.loss(step, frozenset({output}))

    def read_later(self, step: ir.Step, field: str) -> bool:
        """Whether a step after ``step`` reads what it wrote to ``field`` for more than showing or
        ordering it (select() and table() show; a sort orders a time alike in seconds,
        milliseconds or as a datetime); true when ``step`` is not one of the rule's own steps."""
        steps = self.query.steps
        index = next((i for i, s in enumerate(steps) if s is step), None)
        if index is None:
            return True
        for later in steps[index + 1:]:
            if not isinstance(later, ir.Project | ir.Order) and field in step_reads(later):
                return True
            if field in step_writes(later):
                return False
        return False

    def native_carries(self, name: str) -> bool:
        """Whether the profile's native events of this event type's logsource category carry a
        field named ``name`` (Sigma: Sysmon's process_creation events carry Image)."""
        native = self.profile.native
        category = dict(self.event.logsource).get("category") if self.event is not None else None
        return (native is not None and category is not None and category in dict(native.logsources)
                and name in native.fields_of(category))

    def native_events(self) -> str:
        """This event type's records, in words, for a message."""
        where = dict(self.event.logsource) if self.event is not None else {}
        return (f"the events of logsource {', '.join(f'{k} {v}' for k, v in where.items())}" if where
                else f"the events of profile {self.profile.name}")

    def record_tests(self) -> list[tuple[str, tuple[str, ...]]]:
        """The profile's tests that pick this event type's records out of a shared table or
        logsource (``match:``), as (target field, values)."""
        return list(self.event.match) if self.event is not None else []

    def track(self, step: ir.Step) -> None:
        """Note the fields a step writes: later references to them are the query's own fields."""
        self.computed |= step_writes(step)

    def column(self, name: str, span: Span = NO_SPAN, output: bool = False) -> str | None:
        """The target's name for field ``name``; None (and a diagnostic) when there is none.

        ``output`` marks a field that is only shown (select/table/sort): losing it is presentation
        loss; losing a field a filter tests is detection loss."""
        if name in self.computed:
            return name
        mapped = self.profile.field(self.event, name)
        kind = "presentation" if output else DETECTION
        if mapped is None:
            if self.profile.unmapped != "strict" and name.startswith("#") and self.profile.language != "python":
                # A LogScale tag (#repo, #type, #Vendor) the profile does not map: the target's events
                # carry fields, not LogScale's tags (the Python matcher reads #x as x, LogScale's export);
                # passed through, a test on one selects nothing.
                self.unsupported(f"field {name} is a LogScale tag, which the events of profile {self.profile.name} "
                                 "do not carry" + ("; its column stays empty" if output else ""), span, kind)
                return name if output else None
            if self.profile.unmapped == "identity":
                return name
            where = self.event.table or self.event.name if self.event else self.profile.name
            if self.profile.unmapped == "strict":
                self.unsupported(f"field {name} has no mapping in profile {self.profile.name} ({where})"
                                 + ("; left out of the output" if output else ""), span, kind)
                return None
            # Shown, the column keeps the Falcon name (presentation); so does a test on a name the
            # logsource's native events carry (a Sigma-to-LogScale converter's Image, TargetFilename).
            # Any other test reads a field those events do not carry: it changes what matches.
            carried = output or self.native_carries(name)
            self.unsupported(f"field {name} is not mapped by profile {self.profile.name}; passed through "
                             "under its Falcon name" + ("" if carried else f", which {self.native_events()} do not "
                                                         "carry, so a test on it selects other events"), span,
                             "presentation" if carried else DETECTION)
            return name
        if not mapped.exact:
            what = f"becomes {mapped.name}, which" if mapped.name != name.lstrip("#") else "in profile " \
                f"{self.profile.name}"
            self.unsupported(f"field {name} {what} is not the same information"
                             + (f" ({mapped.note})" if mapped.note else ""), span, kind)
        if mapped.transform == DRIVE_PATH and output:
            self.shown_as_drive_path(name, mapped.name, span)
        if mapped.transform is not None and mapped.transform != DRIVE_PATH and not output:
            # (a drive_path column's tests are checked once, by check_paths)
            self.transformed_filter(name, mapped.name, mapped.transform, span)
        return mapped.name

    def shown_as_drive_path(self, name: str, column: str, span: Span) -> None:
        """A Windows path the rows show from the drive letter: the same file, written otherwise."""
        if not windows(self.query.source.platforms) or name in self.unix_paths:
            return  # a macOS or Linux path is written the same way
        self.unsupported(f"{name} is shown as {column}, which writes a Windows path from the drive letter "
                         "(C:\\...) where Falcon writes it from the volume's device (\\Device\\HarddiskVolumeN\\...)",
                         span, PRESENTATION, (name,))

    def transformed_filter(self, name: str, column: str, transform: str, span: Span) -> None:
        """A filter on a field whose values differ in shape in the target; emitters that can
        rewrite the test override this, the rest report it."""
        self.unsupported(f"a test on {name} would compare {column}, whose values have another shape "
                         f"({transform})", span)


#: Why regex(repeat=true) inside a case branch is refused (every target but LogScale itself).
BRANCH_REPEAT = ("regex(repeat=true) inside a case branch makes one event of each match there; cqlx does not "
                 "convert it")


def _beyond_ascii(texts: tuple[str, ...]) -> str:
    """The letters beyond ASCII that have another case, in the order they come."""
    return "".join(dict.fromkeys(c for text in texts for c in text if not c.isascii() and c.lower() != c.upper()))


def _calls(expr: ir.Expr, name: str) -> Iterator[ir.Func]:
    """Every call of function ``name`` in ``expr``."""
    if isinstance(expr, ir.Func):
        if expr.name == name:
            yield expr
        for arg in expr.args:
            yield from _calls(arg, name)
    elif isinstance(expr, ir.Arith):
        yield from _calls(expr.left, name)
        yield from _calls(expr.right, name)
    elif isinstance(expr, ir.Cond):
        yield from _calls(expr.then, name)
        yield from _calls(expr.otherwise, name)


def _folded_texts(pred: ir.Pred) -> tuple[str, ...]:
    """The values or patterns a test compares ignoring case (none when it heeds case)."""
    if isinstance(pred, ir.Eq) and pred.ignore_case:
        return (pred.value,)
    if isinstance(pred, ir.Glob | ir.Regex) and pred.ignore_case:
        return (pred.pattern,)
    if isinstance(pred, ir.In) and pred.ignore_case:
        return pred.values
    return ()


def _merged_match(matches: list[tuple[tuple[str, tuple[str, ...]], ...]]
                  ) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """The record tests of several event types sharing a table, as one: a type with none reads every
    record; types tested on the same one field read any of their values. None when the types are
    told apart by different fields (an OR of conjunctions the per-field tests cannot say)."""
    if any(not match for match in matches):
        return ()
    columns = {tuple(column for column, _ in match) for match in matches}
    if len(columns) != 1 or len(next(iter(columns))) != 1:
        return None
    values = dict.fromkeys(value for match in matches for value in match[0][1])
    return ((matches[0][0][0], tuple(values)),)


def native_carriers(pred: ir.Pred, native: NativeEvents, computed: set[str]) -> set[str]:
    """The native events (:class:`NativeEvents`) an event passing ``pred`` can be: a test that
    needs its field present (SEMANTICS.md: a test on a missing field is false) only passes the
    events that carry it; an equality on ``id_field`` only the event of that id. A field the rule
    computes, a tag, a negation or a free-text search says nothing."""
    if isinstance(pred, ir.And):
        able = set(native.events)
        for item in pred.items:
            able &= native_carriers(item, native, computed)
        return able
    if isinstance(pred, ir.Or):
        return set().union(*(native_carriers(p, native, computed) for p in pred.items))
    if isinstance(pred, ir.Eq | ir.Glob | ir.Regex | ir.Cmp | ir.Exists | ir.In | ir.Cidr) \
            and pred.field not in computed and pred.field[:1] not in ("#", "@"):
        if isinstance(pred, ir.Eq) and pred.field == native.id_field:
            return {pred.value} & set(native.events)
        return set(native.carriers(frozenset({pred.field})))
    return set(native.events)


def _without(steps: tuple[ir.Step, ...], pred: ir.Pred) -> tuple[ir.Step, ...]:
    """The steps with ``pred`` (this very object: a conjunct of a leading filter) taken out."""
    for index, step in enumerate(steps):
        if not isinstance(step, ir.Filter):
            continue
        rest: tuple[ir.Pred, ...] | None = None
        if step.pred is pred:
            rest = ()
        elif isinstance(step.pred, ir.And) and any(item is pred for item in step.pred.items):
            rest = tuple(item for item in step.pred.items if item is not pred)
        if rest is None:
            continue
        kept = [replace(step, pred=rest[0] if len(rest) == 1 else ir.And(rest, step.pred.span))] if rest else []
        return (*steps[:index], *kept, *steps[index + 1:])
    return steps
