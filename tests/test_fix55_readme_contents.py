"""README's contents list links every ## and ### section, in order, to the anchor GitHub makes of its heading: a
section renamed, added or removed without the list fails here, not in a reader's browser."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters, digits, _ and - kept), spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contents_list_links_every_section_in_order():
    text = README.read_text()
    head, body = text.split("## Contents\n", 1)
    contents, rest = body.split("\n## ", 1)
    links = re.findall(r"^( *)- \[[^\]]+\]\(#([^)]+)\)$", contents, re.M)
    sections = [(m[0], anchor(m[1])) for m in re.findall(r"^(##|###) (.+)$", "## " + rest, re.M)]
    assert len(set(a for _, a in sections)) == len(sections)  # no two sections share an anchor
    assert [(len(indent) // 2, a) for indent, a in links] == [(len(level) - 2, a) for level, a in sections]
