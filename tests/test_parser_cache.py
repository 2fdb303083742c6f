"""The LALR tables are cached per user, keyed by the grammar: a changed grammar, a damaged file, a
cache directory that cannot be written or is not private never change what is parsed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cqlx import parser
from cqlx.resources import data_path

GRAMMAR = data_path("grammar", "cql.lark").read_text(encoding="utf-8")
QUERY = "#event_simpleName=ProcessRollup2 | CommandLine = /docker/i | x := 1"


def _tree(made: object) -> object:
    tree = made.parse(QUERY)  # type: ignore[attr-defined]
    assert tree == parser.parse(QUERY)  # the AST itself: the transformer runs inside the parser
    return tree


def test_tables_are_saved_then_read(tmp_path: Path) -> None:
    first = parser.load_parser(GRAMMAR, tmp_path)
    files = list(tmp_path.glob("cql-*.lark"))
    assert len(files) == 1 and list(tmp_path.iterdir()) == files
    second = parser.load_parser(GRAMMAR, tmp_path)
    assert _tree(second) == _tree(first)
    assert list(tmp_path.glob("cql-*.lark")) == files


def test_a_changed_grammar_gets_its_own_file(tmp_path: Path) -> None:
    parser.load_parser(GRAMMAR, tmp_path)
    changed = GRAMMAR + "\n// a comment changes the text, so the key\n"
    made = parser.load_parser(changed, tmp_path)
    assert len(list(tmp_path.glob("cql-*.lark"))) == 2
    assert _tree(made) == _tree(parser.load_parser(GRAMMAR, None))


def test_a_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    parser.load_parser(GRAMMAR, tmp_path)
    (saved,) = tmp_path.glob("cql-*.lark")
    saved.write_bytes(b"not a pickle")
    made = parser.load_parser(GRAMMAR, tmp_path)
    assert _tree(made) == _tree(parser.load_parser(GRAMMAR, None))
    assert saved.read_bytes() != b"not a pickle"


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_still_parses(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        made = parser.load_parser(GRAMMAR, tmp_path)
    finally:
        tmp_path.chmod(0o700)
    assert _tree(made) and not list(tmp_path.iterdir())


def test_a_cache_file_that_cannot_be_written_or_read_still_parses(tmp_path: Path) -> None:
    parser.load_parser(GRAMMAR, tmp_path)
    (saved,) = tmp_path.glob("cql-*.lark")
    saved.unlink()
    saved.mkdir()  # a directory where the file should be: neither read nor written
    made = parser.load_parser(GRAMMAR, tmp_path)
    assert _tree(made) == _tree(parser.load_parser(GRAMMAR, None))
    assert saved.is_dir() and not list(saved.iterdir())


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_the_cache_directory_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = parser.cache_dir()
    assert directory == tmp_path / "cqlx" and directory.stat().st_mode & 0o777 == 0o700
    directory.chmod(0o777)  # another user could plant a file there: not used
    assert parser.cache_dir() is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("", encoding="utf-8")  # cannot be created: no cache
    assert parser.cache_dir() is None
