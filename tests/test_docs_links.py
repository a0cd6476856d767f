"""Every relative link in README.md and docs/*.md points to a file or folder that exists.

Only Markdown link targets are read (``[text](target)`` and ``![alt](target)``, outside code):
not the pages' content, their numbers or their anchors.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)   # fenced code blocks
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)                # http:, https:, mailto:, ...


def link_targets(text: str) -> list[str]:
    """The targets of the inline links and images of a Markdown text, code left out."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return LINK.findall(text)


def relative_paths(text: str) -> list[str]:
    """The file part of every relative link target (anchors and queries dropped; pure anchors skipped)."""
    paths = []
    for target in link_targets(text):
        path = re.split(r"[#?]", target, maxsplit=1)[0]
        if path and not EXTERNAL.match(target):
            paths.append(path)
    return paths


def test_link_targets_leave_out_code_external_links_and_anchors():
    text = ("[a](docs/a.md#part) ![img](pic.png) [web](https://example.org/x.md) [here](#top)\n"
            "`[no](inline.md)`\n```\n[no](fenced.md)\n```\n[b](../b.md \"title\")")
    assert relative_paths(text) == ["docs/a.md", "pic.png", "../b.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    missing = [path for path in relative_paths(page.read_text(encoding="utf-8"))
               if not (page.parent / path).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"
