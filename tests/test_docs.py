"""The README is the front door and docs/ holds the rest: every relative link resolves, and nothing cites a
document that is not in the repository."""

import re

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_stays_a_front_door():
    assert (ROOT / "README.md").stat().st_size <= 15_000


def test_every_relative_link_resolves():
    broken = [(p.name, m.group(1)) for p in PAGES for m in re.finditer(r"\]\(([^)#\s]+)[^)]*\)", p.read_text())
              if not m.group(1).startswith(("http://", "https://", "mailto:")) and not (p.parent / m.group(1)).exists()]
    assert broken == []


def test_no_citation_of_documents_outside_the_repository():
    sources = [*PAGES, *(ROOT / "agrec").rglob("*.py"), *(ROOT / "configs").glob("*.yaml"),
               *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "tests").rglob("*.py")]
    outside = re.compile(r"DESIGN\.md|DESIGN §|\.\./shared")
    cited = [str(p.relative_to(ROOT)) for p in sources if p.name != "test_docs.py" and outside.search(p.read_text())]
    assert cited == []
