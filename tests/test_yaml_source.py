"""The strict YAML reader: every kind of bad input becomes one clear Diagnostic."""

from __future__ import annotations

import pytest

from shipyard.core.yamlsource import MAX_NODES, parse_yaml

LAUGHS = b"""a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
"""

BAD = [
    # (case, raw bytes, rule, line, column, words the message must contain)
    ("syntax", b"a: 1\n b: 2\n", "yaml/syntax", 2, 3, "mapping values are not allowed"),
    ("unclosed", b"a: [1, 2\nb: 3\n", "yaml/syntax", 2, 2, "did not find expected ',' or ']'"),
    ("duplicate key", b"name: a\nspec: {}\nname: b\n", "yaml/duplicate-key", 3, 1, "first defined at line 1"),
    ("python tag", b"a: !!python/object/apply:os.system ['id']\n", "yaml/unsupported-tag", 1, 4, "!!python/object"),
    ("custom tag", b"a: !Secret abc\n", "yaml/unsupported-tag", 1, 4, "'!Secret'"),
    ("set tag", b"a: !!set {x, y}\n", "yaml/unsupported-tag", 1, 4, "!!set"),
    ("billion laughs", LAUGHS, "yaml/too-many-nodes", 1, 4, str(MAX_NODES)),
    ("recursive alias", b"a: &a [*a]\n", "yaml/too-deep", 1, 4, "nesting deeper"),
    ("merge key", b"base: &b {x: 1}\nc:\n  <<: *b\n", "yaml/merge-key", 3, 3, "merge key"),
    ("complex key", b"? [a, b]\n: 1\n", "yaml/complex-key", 1, 3, "string key"),
    ("empty file", b"", "yaml/empty-file", 1, 1, "empty file"),
    ("only comments", b"# nothing here\n---\n", "yaml/empty-file", 1, 1, "empty file"),
    ("not utf-8", b"a: 1\nb: caf\xe9\n", "yaml/encoding", 2, 7, "0xe9"),
    ("control character", b"a: 1\nb: x\x07y\n", "yaml/control-character", 2, 5, "\\x07"),
    ("bad explicit int", b"a: !!int twelve\n", "yaml/bad-scalar", 1, 4, "!!int"),
]


@pytest.mark.parametrize(("case", "raw", "rule", "line", "column", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_yaml_gives_one_positioned_diagnostic(
    case: str, raw: bytes, rule: str, line: int, column: int, words: str
) -> None:
    documents, diagnostics = parse_yaml(raw, "specs/x.yaml")
    assert documents == []
    assert [d.rule for d in diagnostics] == [rule]
    (diagnostic,) = diagnostics
    assert diagnostic.position is not None
    assert (diagnostic.position.file, diagnostic.position.line, diagnostic.position.column) == (
        "specs/x.yaml",
        line,
        column,
    )
    assert words in diagnostic.message + diagnostic.hint


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    _, ours = parse_yaml(b"[" * 100 + b"]" * 100, "deep.yaml")
    assert [(d.rule, d.position.column if d.position else 0) for d in ours] == [("yaml/too-deep", 66)]
    # past the parser's own limit the parser refuses first, still as a clean diagnostic
    _, parsers = parse_yaml(b"[" * 5000 + b"]" * 5000, "deeper.yaml")
    assert [d.rule for d in parsers] == ["yaml/syntax"]
    assert "depth" in parsers[0].message


def test_positions_are_one_based_for_values_and_keys() -> None:
    (doc,), diagnostics = parse_yaml(b"kind: Team\nspec:\n  quota:\n    gpu: 4\n", "t.yaml")
    assert diagnostics == []
    assert doc.data == {"kind": "Team", "spec": {"quota": {"gpu": 4}}}
    value = doc.position(("spec", "quota", "gpu"))
    key = doc.position(("spec", "quota", "gpu"), at_key=True)
    assert (value.line, value.column) == (4, 10)
    assert (key.line, key.column) == (4, 5)
    missing = doc.position(("spec", "quota", "cpu"))  # nearest written parent
    assert (missing.line, missing.column) == (4, 5)


def test_several_documents_keep_their_own_positions_and_skip_empty_ones() -> None:
    raw = b"a: 1\n---\n---\nb: [1, 2]\n"
    documents, diagnostics = parse_yaml(raw, "m.yaml")
    assert diagnostics == []
    assert [d.data for d in documents] == [{"a": 1}, {"b": [1, 2]}]
    assert documents[1].position(("b", 1)).line == 4


def test_keys_stay_as_written_but_values_follow_yaml() -> None:
    (doc,), _ = parse_yaml(b"on: yes\n'1': 0x10\nwhen: 2024-01-01\n", "k.yaml")
    assert doc.data == {"on": True, "1": 16, "when": "2024-01-01"}


def test_all_problems_in_a_document_are_reported_together() -> None:
    raw = b"a: 1\na: 2\nb: !!python/name:os.system ''\n"
    _, diagnostics = parse_yaml(raw, "two.yaml")
    assert sorted(d.rule for d in diagnostics) == ["yaml/duplicate-key", "yaml/unsupported-tag"]


def test_byte_order_mark_is_accepted() -> None:
    documents, diagnostics = parse_yaml(b"\xef\xbb\xbfa: 1\n", "bom.yaml")
    assert diagnostics == []
    assert documents[0].data == {"a": 1}
