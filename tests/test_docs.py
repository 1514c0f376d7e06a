"""README.md and docs/: every relative link resolves, and README stays a short entry point."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(path):
    for target in LINK.findall(path.read_text()):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#")[0]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document):
    missing = [t for t in relative_links(document) if not (document.parent / t).exists()]
    assert not missing, f"{document.name} links to missing files: {missing}"


def test_readme_links_every_document_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    linked = {pathlib.Path(t).name for t in relative_links(ROOT / "README.md")}
    assert {p.name for p in DOCUMENTS[1:]} <= linked
    assert len(readme.splitlines()) < 260


def test_link_pattern_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](missing.md) and [b](https://example.org) and [c](#anchor)\n")
    assert list(relative_links(page)) == ["missing.md"]
