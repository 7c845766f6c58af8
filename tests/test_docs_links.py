"""The README and docs/ hold together: every relative link reaches a file, and every #fragment a
heading of that file, as GitHub renders them. The README stays a front door that links to every
page under docs/.

Links inside fenced code blocks and code spans are not links, so they are not checked; links with
a scheme (https:, mailto:) leave the repository and are not checked either.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 300

# [text](target) and ![alt](target); the text may hold one level of brackets, the target may be
# in <…> and be followed by a title.
INLINE_LINK = re.compile(
    r"!?\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]"
    r"\(\s*(?:<(?P<angled>[^>]*)>|(?P<bare>[^\s()]*))(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_DEFINITION = re.compile(
    r"^ {0,3}\[[^\]]+\]:[ \t]*(?:<(?P<angled>[^>]*)>|(?P<bare>\S+))", re.MULTILINE
)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
MARKDOWN_SUFFIXES = (".md", ".markdown")


def documentation_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line outside fenced code blocks, code spans blanked out."""
    fence = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opening = FENCE.match(line)
        if fence:
            if opening and closes(fence, opening[1], line):
                fence = ""
            continue
        if opening:
            fence = opening[1]
            continue
        yield number, CODE_SPAN.sub(lambda span: " " * len(span[0]), line)


def closes(fence: str, marker: str, line: str) -> bool:
    """A fence closes with the same character, at least as many times, and nothing after it."""
    return marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip().strip(fence[0])


def paragraphs(path: Path) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each run of prose lines: a link's text may wrap a line."""
    first, block = 0, []
    for number, line in prose_lines(path):
        if block and (not line.strip() or number != first + len(block)):
            yield first, "\n".join(block)
            block = []
        if line.strip():
            first = first if block else number
            block.append(line)
    if block:
        yield first, "\n".join(block)


def link_targets(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    for first, text in paragraphs(path):
        links = [*INLINE_LINK.finditer(text), *REFERENCE_DEFINITION.finditer(text)]
        for link in sorted(links, key=lambda link: link.start()):
            yield first + text.count("\n", 0, link.start()), target_of(link)


def target_of(link: re.Match[str]) -> str:
    return link["angled"] if link["angled"] is not None else link["bare"]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = INLINE_LINK.sub(lambda link: link["text"], heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated slug gets -1, -2, … as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for _, line in prose_lines(path):
        heading = HEADING.match(line)
        if heading is None:
            continue
        slug = github_slug(heading[1] or "")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def link_problem(source: Path, target: str, root: Path) -> str | None:
    """Why `target`, written in `source`, leads nowhere; None if it resolves or leaves the repo."""
    if SCHEME.match(target) or target.startswith("//"):
        return None
    if not target:
        return "empty target"
    location, _, fragment = target.partition("#")
    location = unquote(location.split("?", 1)[0])
    if not location:
        linked = source
    elif location.startswith("/"):
        linked = root / location.lstrip("/")
    else:
        linked = source.parent / location
    if not linked.exists():
        return f"no such file: {os.path.relpath(linked, root)}"
    if not fragment or linked.suffix.lower() not in MARKDOWN_SUFFIXES:
        return None
    if unquote(fragment) not in anchors(linked):
        return f"no heading with the anchor #{fragment} in {linked.name}"
    return None


def broken_links(files: list[Path], root: Path) -> list[str]:
    return [
        f"{source.relative_to(root)}:{number}: ({target}) {problem}"
        for source in files
        for number, target in link_targets(source)
        if (problem := link_problem(source, target, root)) is not None
    ]


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = broken_links(documentation_files(), ROOT)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_at_most_300_lines():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_every_docs_page_can_be_reached_from_the_readme():
    # Directly, or through a page the README links to (the decision records' index).
    reached, pending = set(), [README.resolve()]
    while pending:
        page = pending.pop()
        for _, target in link_targets(page):
            linked = (page.parent / target.partition("#")[0]).resolve()
            if SCHEME.match(target) or linked in reached or linked.suffix != ".md":
                continue
            reached.add(linked)
            if linked.is_file():
                pending.append(linked)
    pages = sorted((ROOT / "docs").rglob("*.md"))
    missing = [str(page.relative_to(ROOT)) for page in pages if page.resolve() not in reached]
    assert not missing, "No link from README.md leads to: " + ", ".join(missing)


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        (
            "Portal links: issued, opened, used up, revoked",
            "portal-links-issued-opened-used-up-revoked",
        ),
        (
            "How it is built, and what each change gained",
            "how-it-is-built-and-what-each-change-gained",
        ),
        ("Allowlisting Hookline's address", "allowlisting-hooklines-address"),
        ("`WEBHOOKS_TIMEOUT` and the  watchdog", "webhooks_timeout-and-the--watchdog"),
        ("See [the API](api.md) — v1", "see-the-api--v1"),
        ("Zoë's café", "zoës-café"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_repeated_headings_get_numbered_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n### Notes\n\n## Other\n")

    assert anchors(page) == {"notes", "notes-1", "notes-2", "other"}


def test_broken_files_and_fragments_are_each_reported_with_file_and_line(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A section\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Readme\n"
        "[good](docs/page.md#a-section) and [missing file](docs/gone.md)\n"
        "![image](docs/picture.png)\n"
        "[bad fragment](docs/page.md#no-such-section)\n"
        "[same file](#readme) and [same file, wrong](#nowhere)\n"
        "[ref]: docs/also-gone.md\n"
        "[web](https://example.com/x.md) [mail](mailto:someone@example.com)\n"
        "\n"
        "A link whose text [wraps onto\nthe next line](docs/page.md#a-sectio).\n"
    )

    assert broken_links([readme], tmp_path) == [
        "README.md:2: (docs/gone.md) no such file: docs/gone.md",
        "README.md:3: (docs/picture.png) no such file: docs/picture.png",
        "README.md:4: (docs/page.md#no-such-section) no heading with the anchor "
        "#no-such-section in page.md",
        "README.md:5: (#nowhere) no heading with the anchor #nowhere in README.md",
        "README.md:6: (docs/also-gone.md) no such file: docs/also-gone.md",
        "README.md:9: (docs/page.md#a-sectio) no heading with the anchor #a-sectio in page.md",
    ]


def test_code_is_not_checked_for_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "```sh\n# A comment, not a heading\ncurl [x](gone.md)\n```\n\n"
        "~~~~\n```\n[y](gone.md)\n~~~~\n\n"
        "A span: `[z](gone.md)`.\n"
    )

    assert broken_links([page], tmp_path) == []
    assert anchors(page) == {"page"}
