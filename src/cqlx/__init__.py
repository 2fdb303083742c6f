"""cqlx: CrowdStrike Falcon LogScale (CQL) detections as Splunk SPL, Microsoft KQL, Sigma and
executable Python matchers.

>>> import cqlx
>>> q = cqlx.parse('#event_simpleName=ProcessRollup2 | CommandLine=/whoami/i')
>>> cqlx.compile_matcher('CommandLine=/whoami/i').match({"CommandLine": "WHOAMI"}) is not None
True
"""

from cqlx.api import Matcher, compile_matcher, parse, parse_tree
from cqlx.errors import CqlError

__all__ = ["CqlError", "Matcher", "compile_matcher", "convert", "parse", "parse_tree"]
__version__ = "0.1.0"


def convert(text: str, to: str = "kql", profile: str | None = None, params: dict[str, str] | None = None,
            saved_searches: dict[str, str] | None = None) -> str:
    """Convert a CQL query to ``to`` (spl, kql, sigma, python, cql) with a target profile;
    ``params`` gives values to the query's parameters (``?name``), ``saved_searches`` the bodies
    of the saved searches its ``$name()`` calls name."""
    from cqlx.conversion import convert_text

    return convert_text(text, to, profile, params=params, saved_searches=saved_searches).output
