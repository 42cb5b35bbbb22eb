"""The repository's own links: every log kept under logs/ is cited somewhere a
reader will find it, and every logs/ or docs/ path the README and docs/ cite
exists (with its heading, when the link names one).

A log counts as cited when README.md, a Markdown file under docs/, or a
Markdown file of the book (book/src, book/i18n/ko/src) names its path: as a
relative link that resolves to it, or as text ending in `logs/...` (the book
writes `{{#include ../_includes/repo_url.md}}/blob/main/logs/...`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "logs"
DOCS = REPO / "docs"
BOOK_SOURCES = (REPO / "book" / "src", REPO / "book" / "i18n" / "ko" / "src")

# A Markdown link or image target: ](target) or ](target "title").
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A repository path starting at logs/ or docs/ anywhere in the text (after a
# slash, a quote, a space, ...), ending on a letter, digit or underscore so
# that a sentence's full stop is not part of it.
PATH_TEXT = re.compile(r"(?<![\w.-])((?:logs|docs)/[\w./-]*\w)")


def tracked_logs() -> list[str]:
    """Repo-relative paths of the files under logs/: git's list of tracked
    files where git and a checkout are at hand, else a walk of the folder.
    Files deleted from the working tree do not count."""
    if shutil.which("git") and (REPO / ".git").exists():
        result = subprocess.run(
            ["git", "ls-files", "-z", "logs"], cwd=REPO, capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            return sorted(p for p in result.stdout.split("\0") if p and (REPO / p).is_file())
    return sorted(p.relative_to(REPO).as_posix() for p in LOGS.rglob("*") if p.is_file())


def citing_files() -> list[Path]:
    files = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    for root in BOOK_SOURCES:
        files += sorted(root.rglob("*.md")) if root.is_dir() else []
    return [f for f in files if f.is_file()]


def link_targets(md: Path) -> list[tuple[str, str]]:
    """(repo-relative path, fragment) of each relative link in md that stays
    inside the repository. External links and pure #anchors are skipped."""
    targets = []
    for raw in LINK.findall(md.read_text(encoding="utf-8")):
        parts = urlsplit(raw)
        if parts.scheme or parts.netloc or not parts.path or raw.startswith("{{"):
            continue
        resolved = (md.parent / unquote(parts.path)).resolve()
        if resolved.is_relative_to(REPO):
            targets.append((resolved.relative_to(REPO).as_posix(), unquote(parts.fragment)))
    return targets


def cited_paths(md: Path) -> set[str]:
    """Every repository path md names: its relative links, resolved, and the
    logs/... and docs/... paths in its text."""
    text = md.read_text(encoding="utf-8")
    return {path for path, _ in link_targets(md)} | set(PATH_TEXT.findall(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = md.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # no headings inside code blocks
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def test_every_kept_log_is_cited():
    logs = tracked_logs()
    assert logs, "no files under logs/"
    cited = set().union(*(cited_paths(md) for md in citing_files()))
    uncited = [log for log in logs if log not in cited]
    assert not uncited, (
        "logs that neither README.md, docs/ nor the book cite (cite them, or `git rm` them):\n  "
        + "\n  ".join(uncited)
    )


def test_logs_and_docs_cited_by_readme_and_docs_exist():
    missing = []
    for md in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        paths = {path for path, _ in link_targets(md)} | set(PATH_TEXT.findall(md.read_text(encoding="utf-8")))
        for path in sorted(paths):
            if path.startswith(("logs/", "docs/")) or path in ("logs", "docs"):
                if not (REPO / path).exists():
                    missing.append(f"{md.relative_to(REPO)}: {path}")
    assert not missing, "cited but missing:\n  " + "\n  ".join(missing)


def test_links_into_markdown_name_headings_that_exist():
    broken = []
    for md in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        for path, fragment in link_targets(md):
            target = REPO / path
            if fragment and target.suffix == ".md" and target.is_file() and fragment not in anchors(target):
                broken.append(f"{md.relative_to(REPO)}: {path}#{fragment}")
    assert not broken, "links to headings that do not exist:\n  " + "\n  ".join(broken)


def test_the_checks_see_what_they_should():
    """Guards against the checks passing vacuously: the README's run of record
    is found as a link, and a path in text is found as one too."""
    readme = REPO / "README.md"
    assert "logs/h200/2026-11-30_0700_bench.log" in {p for p, _ in link_targets(readme)}
    assert PATH_TEXT.findall("see {{#include x.md}}/blob/main/logs/h200/a_b.log.") == ["logs/h200/a_b.log"]
    assert PATH_TEXT.findall("[x](../logs/cpu/run.csv)") == ["logs/cpu/run.csv"]
    assert slug("Non-finite values") == "non-finite-values"
    assert slug("The tiled kernel (`tiled.mojo`)") == "the-tiled-kernel-tiledmojo"
