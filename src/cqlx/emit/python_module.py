"""The two parts of every generated matcher module: cqlx's runtime (:mod:`cqlx.runtime`, copied in
whole so that the module runs without cqlx) and, after :data:`RULE_PART`, what the rule compiled
to. In-process matchers (:func:`cqlx.api.compile_query`) run the runtime's own bytecode and compile
only the rule's part; kept apart from the generator so that a run which finds its rule compiled
(:mod:`cqlx.cache`) does not import the generator."""

from __future__ import annotations

import functools
from pathlib import Path
from types import CodeType

from cqlx import runtime

_RUNTIME = Path(runtime.__file__)

#: The line between the runtime and the rule in a generated module: before it, cqlx's runtime.py;
#: after it, what the rule compiled to.
RULE_PART = "\n# ---- the rule ----\n"


@functools.cache
def runtime_source() -> str:
    """The runtime's body, as every generated module carries it (read once per process)."""
    return _RUNTIME.read_text(encoding="utf-8").split('"""', 2)[2].strip()


@functools.cache
def runtime_code() -> CodeType:
    """The code of :mod:`cqlx.runtime`, to run in each in-process matcher's own namespace: from
    its bytecode file where Python keeps one (as it does for any import), compiled once per
    process otherwise. The module text is the same that generated modules carry (plus its
    docstring), so executing it defines the same names, with the state (``REGEX_TIME_LIMIT``,
    ``LOOKUPS``) each matcher's own."""
    # The import system's loader (importlib.abc.InspectLoader.get_code); not imported for its type.
    get_code = getattr(runtime.__spec__.loader if runtime.__spec__ is not None else None, "get_code", None)
    code = get_code(runtime.__name__) if get_code is not None else None
    return code if isinstance(code, CodeType) else compile(_RUNTIME.read_text(encoding="utf-8"), str(_RUNTIME), "exec")


def rule_part(source: str) -> str:
    """What follows the runtime in a module :func:`cqlx.emit.python.emit_python` wrote (the whole
    text when it has no runtime)."""
    _, marker, rule = source.partition(RULE_PART)
    return rule if marker else source
