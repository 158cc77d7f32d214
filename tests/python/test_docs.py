"""The documentation site's code runs as written: every ``python`` block of
``docs/**/*.md`` as a script in a subprocess, as the README's are. Rust code
stays out of the pages (they include the README's Rust blocks, which
``cargo test --doc`` runs), and every part of README.md a page includes is
still marked there. ``make docs`` builds the site itself (warnings as errors)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from codeblocks import ROOT, block_id, blocks, run_python_block

PAGES = sorted((ROOT / "docs").rglob("*.md"))
PYTHON = [(page, code) for page in PAGES for code in blocks(page, "python")]
INCLUDE = re.compile(r'include-markdown "([^"]+)"(?:\s+start="([^"]+)"\s+end="([^"]+)")?')


def _id(page: Path, code: str) -> str:
    return f"{page.relative_to(ROOT / 'docs')}:{block_id(code)}"


def test_the_guides_have_code() -> None:
    # A guide shows its task in code that runs (here), not only in prose.
    with_code = {page.name for page, _ in PYTHON if page.parent.name == "guides"}
    guides = {p.name for p in (ROOT / "docs" / "guides").glob("*.md")}
    assert guides - with_code == set(), "guides without a python block"


@pytest.mark.parametrize("code", [c for _, c in PYTHON], ids=[_id(p, c) for p, c in PYTHON])
def test_docs_python_block_runs(code: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env: dict[str, str] = {}
    if "KafkaShipper" in code and importlib.util.find_spec("confluent_kafka") is not None:
        # A real broker: the session's private tansu (kafka_node.py).
        env["RINGSTAT_KAFKA_URL"] = request.getfixturevalue("kafka").url
    run_python_block(code, tmp_path, env)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT / "docs")) for p in PAGES])
def test_page_has_no_rust_block_of_its_own(page: Path) -> None:
    assert not blocks(page, "rust"), "put Rust examples in README.md or rustdoc (doctests)"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT / "docs")) for p in PAGES])
def test_included_sections_are_marked_once(page: Path) -> None:
    for path, start, end in INCLUDE.findall(page.read_text()):
        source = (page.parent / path).resolve()
        assert source.is_file(), path
        text = source.read_text()
        if start:
            assert text.count(start) == 1, f"{start} in {path}"
            assert text.count(end) == 1, f"{end} in {path}"
            assert text.index(start) < text.index(end), f"{start}..{end} in {path}"


def test_docstrings_become_markdown() -> None:
    # The API reference's griffe extension (docs/hooks/griffe_rst.py) on a
    # Sphinx-style docstring: roles, a doctest and a literal block.
    pytest.importorskip("griffe", reason='the docs extra: pip install ".[docs]"')
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "docs/hooks/griffe_rst.py")
    assert spec is not None
    assert spec.loader is not None
    rst = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rst)
    text = (
        "Like :class:`queue.Queue`, see :meth:`~Registry.snapshot`.\n"
        "\n"
        ">>> q = Queue()\n"
        ">>> q.qsize()\n"
        "0\n"
        "\n"
        "Layout::\n"
        "\n"
        "    {'a': 1}\n"
        "\n"
        "End."
    )
    assert rst.markdown(text) == (
        "Like `queue.Queue`, see `Registry.snapshot`.\n"
        "\n\n```pycon\n>>> q = Queue()\n>>> q.qsize()\n0\n```\n\n\n"
        "Layout:\n\n```text\n{'a': 1}\n```\n\n\nEnd."
    )
