"""README.md and docs/: every relative link resolves, every `make TARGET` they name exists in the Makefile."""

import re

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if path and not re.match(r"[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_make_target_named_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    code = r"(?:`|^)make ([a-z][\w-]*)"  # in `code` or a code block's line, not prose ("make sure")
    named = {t for page in PAGES for t in re.findall(code, page.read_text(encoding="utf-8"), flags=re.M)}
    assert named and named - targets == set(), named - targets
