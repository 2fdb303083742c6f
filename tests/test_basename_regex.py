"""A regex written for a file name, tested on a full path (regexes.basename_regex): the table of
rewrites, and a property check that the rewrite matches exactly the paths whose file name the
original matches."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqlx.regexes import NEVER, basename_glob_regex, basename_regex, python_flags, to_python

TABLE = [
    (r"^(cmd|powershell)\.exe$", "i", r"(^|[\\/])(cmd|powershell)\.exe$"),
    (r"\.exe$", "", r"\.exe$"),
    (r"^[a-z]+\.exe$", "i", r"(^|[\\/])[a-z]+\.exe$"),
    (r"^\w{8}\.tmp$", "", r"(^|[\\/])\w{8}\.tmp$"),
    (r"^.*\.exe$", "", None),  # `.` can match a separator: the match could start in a folder
    (r"^\S+\.exe$", "", None),
    (r"^[^x]+$", "", None),
    # not anchored at the end: the rest of the name must follow the match, with no separator
    (r"^cmd", "", r"(^|[\\/])cmd[^\\/]*$"),
    (r"cmd", "i", r"cmd[^\\/]*$"),
    (r"e", "", r"e[^\\/]*$"),
    (r"(cmd|pwsh)\.", "i", r"(cmd|pwsh)\.[^\\/]*$"),
    (r"cmd\$", "", r"cmd\$[^\\/]*$"),  # an escaped dollar is no anchor
    (r"^cmd$|^ps$", "", None),  # a top-level alternation: each branch would need its own anchor
    (r"c(m$)", "", None),  # an anchor inside a group
    (r"\bcmd", "", None),  # a word boundary: whether it holds depends on the character before
    (r"^a$b$", "", None),
    (r"\\excel\.exe$", "i", NEVER),  # a separator in every match: no file name holds one
    (r"^C:\\Windows", "", NEVER),
]


@pytest.mark.parametrize(("pattern", "flags", "expected"), TABLE)
def test_rewrites(pattern: str, flags: str, expected: str | None) -> None:
    assert basename_regex(pattern, flags) == expected


PATTERNS = [p for p, _, e in TABLE if e is not None]
SEGMENT = st.text(alphabet="abcCMDexp.12_ -", min_size=0, max_size=8)
NAMES = st.sampled_from(["cmd.exe", "CMD.EXE", "powershell.exe", "a.exe", "abcdefgh.tmp", "x.exe.bak", "cmd",
                         "12345678.tmp", "pwsh.exe", ""])


@settings(max_examples=400, deadline=None)
@given(folders=st.lists(SEGMENT, max_size=3), name=NAMES, separator=st.sampled_from(["\\", "/"]),
       index=st.integers(0, len(PATTERNS) - 1), ignore_case=st.booleans())
def test_the_rewrite_matches_exactly_the_paths_whose_name_matches(folders: list[str], name: str, separator: str,
                                                                   index: int, ignore_case: bool) -> None:
    pattern = PATTERNS[index]
    flags = "i" if ignore_case else ""
    path = separator.join([*folders, name])
    file_name = re.split(r"[\\/]", path)[-1]
    rewritten = basename_regex(pattern, flags)
    assert rewritten is not None
    on_name = re.search(to_python(pattern), file_name, python_flags(flags)) is not None
    on_path = re.search(to_python(rewritten), path, python_flags(flags)) is not None
    assert on_name == on_path, (pattern, path)


GLOBS = [("certutil*.exe",), ("cmd.exe", "*.ps1"), ("*",), ("a*b*c",), ("x\\y",)]


@settings(max_examples=300, deadline=None)
@given(folders=st.lists(SEGMENT, max_size=3), name=NAMES, separator=st.sampled_from(["\\", "/"]),
       index=st.integers(0, len(GLOBS) - 1), ignore_case=st.booleans())
def test_the_glob_rewrite_matches_exactly_the_paths_whose_name_matches(folders: list[str], name: str,
                                                                       separator: str, index: int,
                                                                       ignore_case: bool) -> None:
    from cqlx.regexes import glob_to_regex

    globs = GLOBS[index]
    flags = re.IGNORECASE if ignore_case else 0
    path = separator.join([*folders, name])
    file_name = re.split(r"[\\/]", path)[-1]
    on_name = any(re.search(glob_to_regex(g, "\\Z"), file_name, flags) for g in globs)
    on_path = re.search(basename_glob_regex(globs), path, flags) is not None
    assert on_name == on_path, (globs, path)
