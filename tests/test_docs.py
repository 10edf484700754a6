"""The documents stand on their own: every relative link and image in README.md and
docs/ resolves inside the repository, anchors included, and nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped but
    hyphens, spaces turned to hyphens (a repeated heading gets -1, -2 ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


def broken_links(document: Path) -> list[str]:
    """The relative links of ``document`` that do not resolve, with why."""
    wrong = []
    for target in links(document):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        where, _, anchor = target.partition("#")
        file = (document.parent / where).resolve() if where else document
        if ROOT not in file.parents and file != ROOT:
            wrong.append(f"{target}: outside the repository")
        elif not file.exists():
            wrong.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            wrong.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    return wrong


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_relative_link_resolves_inside_the_repository(document):
    assert broken_links(document) == []


def test_the_link_check_finds_what_is_broken(tmp_path, monkeypatch):
    """The check itself, on a document with one good and three bad links."""
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# A title\n[ok](#a-title) [gone](b.md) [no](#nothing)\n"
                                   "[out](../../etc/passwd) [web](https://example.org)\n")
    found = links(tmp_path / "a.md")
    assert found == ["#a-title", "b.md", "#nothing", "../../etc/passwd", "https://example.org"]
    assert anchors(tmp_path / "a.md") == {"a-title"}
    assert broken_links(tmp_path / "a.md") == [
        "b.md: no such file", "#nothing: no heading #nothing in a.md",
        "../../etc/passwd: outside the repository"]


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    """The first hour's answers fit in the README; the rest lives in docs/ (issue 22)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail to docs/"


# Documents the project started from but does not ship: naming them sends a reader who
# cloned the repository to files they cannot see (the specification and the measured facts
# are docs/specification.md and docs/measured-facts.md).
OUTSIDE_DOCUMENTS = re.compile(r"\.\./shared|PROTOCOL\.md|FINDINGS\.md|DESIGN-NEXT|STYLE\.md")


def tracked_text_files() -> list[Path]:
    import subprocess

    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / n for n in names
            if n.endswith((".md", ".py", ".sh", ".toml", ".txt", ".cfg", ".yaml", ".yml"))
            and n != "tests/test_docs.py" and (ROOT / n).exists()]


def test_nothing_in_the_repository_names_a_document_it_does_not_ship():
    named = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in tracked_text_files()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if OUTSIDE_DOCUMENTS.search(line)]
    assert named == []


def test_the_readme_links_every_page_of_docs():
    """A page nobody links to is a page nobody finds: README.md links each page of docs/
    and of docs/studies/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    pages = sorted([*(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "studies").glob("*.md")])
    assert pages and readme
    assert [p.name for p in pages if p.resolve() not in linked] == []
