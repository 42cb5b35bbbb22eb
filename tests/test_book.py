"""Checks of the Puzzle 20 book (book/), in English and Korean.

The book is built once for this module, with book/build.py into a temporary
folder. The chapter's expected output is compared with what the solution
really prints, so this module also runs the solution and the unsolved problem
once each: under a minute on a warm cache, more on the first run, while MAX
compiles the Mojo package.

Blocks the tests compare with the repository are marked in the chapter's
Markdown by an HTML comment on the line before the fence:

    <!-- check: stdout of solutions/p20/p20.py -->          the whole stdout
    <!-- check: end of stdout of problems/p20/p20.py -->    the last lines of stdout
    <!-- check: quoted from solutions/p20/p20.py -->        text copied from that file

Links to repository files are written `repo:PATH` in the Markdown; build.py's
preprocessor points them at copies in the output's files/ folder, or at a
published repository when book/book.toml sets `repository-url`. The tests
build both ways.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
LANGS = ("en", "ko")
# Where each book's sources are, and where build.py writes it, under --out.
SRC = {"en": BOOK / "src", "ko": BOOK / "i18n" / "ko" / "src"}
OUT = {"en": Path("."), "ko": Path("ko")}
CHAPTER = Path("puzzle_20") / "puzzle_20.md"
SOLUTION = REPO / "solutions" / "p20" / "p20.py"
PROBLEM = REPO / "problems" / "p20" / "p20.py"
KERNELS = REPO / "mojo_conv1d" / "kernels"  # the Mojo package; problems/ and solutions/ link to it as op/
FILES = Path("files")  # where build.py puts the copies, under --out
EXAMPLE_URL = "https://example.com/owner/puzzle20"

INCLUDE = re.compile(r"\{\{#include\s+([^}:\s]+)(?::([^}\s]+))?\s*\}\}")
CHECK = re.compile(r"<!-- check: (.+?) -->\n```[^\n]*\n(.*?)\n```", re.S)
DEVICE = re.compile(r"\(device: [a-z]+\)")
# A link to a repository file in the book's Markdown (as in book/build.py).
REPO_LINK = re.compile(r"""(?:\]\(\s*<?|\b(?:href|src)=["'])repo:([^)\s"'#>]+)(#[^)\s"'>]*)?""")


def markdown_files(lang: str) -> list[Path]:
    return sorted(p for p in SRC[lang].rglob("*.md") if "_includes" not in p.parts)


def chapter_text(lang: str) -> str:
    return (SRC[lang] / CHAPTER).read_text(encoding="utf-8")


def checked_blocks(lang: str, kind: str) -> list[str]:
    """The fenced blocks marked `<!-- check: KIND -->` in the chapter."""
    return [body for what, body in CHECK.findall(chapter_text(lang)) if what == kind]


def includes(md: Path) -> list[tuple[Path, str | None]]:
    return [
        ((md.parent / path).resolve(), anchor or None)
        for path, anchor in INCLUDE.findall(md.read_text(encoding="utf-8"))
    ]


def anchored(text: str, anchor: str | None) -> str:
    """What mdBook's {{#include file:anchor}} inserts: the lines between the
    anchor's markers, without any marker lines."""
    lines = text.splitlines()
    if anchor is not None:
        start = next(i for i, l in enumerate(lines) if re.search(rf"\bANCHOR:\s*{re.escape(anchor)}\b", l))
        end = next(i for i, l in enumerate(lines) if re.search(rf"\bANCHOR_END:\s*{re.escape(anchor)}\b", l))
        lines = lines[start + 1 : end]
    return "\n".join(l for l in lines if not re.search(r"\bANCHOR(_END)?:", l))


# -- fixtures -----------------------------------------------------------------


def build_book(out: Path, repository_url: str) -> Path:
    result = subprocess.run(
        [sys.executable, str(BOOK / "build.py"), "--out", str(out), "--strict", "--repository-url", repository_url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"book/build.py --strict failed (exit {result.returncode}):\n{log}"
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Both books with links to the copies in files/, whatever book.toml sets."""
    return build_book(tmp_path_factory.mktemp("book"), "")


@pytest.fixture(scope="module")
def built_for_repository(tmp_path_factory) -> Path:
    """Both books with links to a published repository at EXAMPLE_URL."""
    return build_book(tmp_path_factory.mktemp("book_url"), EXAMPLE_URL)


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """The solution and the unsolved problem, each run once. SLOW: each
    process compiles the Mojo package, or loads it from MAX's cache. They run
    one after the other, so that two processes never fill that cache at once."""
    return {
        name: subprocess.run(
            [sys.executable, str(script)],
            cwd=REPO,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=900,
        )
        for name, script in (("solution", SOLUTION), ("problem", PROBLEM))
    }


# What "Key concepts" says about calling the op, run for real. Printed as JSON.
CLAIMS_SCRIPT = r"""
import json, sys
from pathlib import Path
import torch
from max.experimental.torch import CustomOpLibrary

ops = CustomOpLibrary(Path(sys.argv[1]))
x = torch.arange(15, dtype=torch.float32)
w = torch.arange(4, dtype=torch.float32)
op = ops.conv1d[{"input_size": 15, "conv_size": 4}]

def error(call):
    try:
        call()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None

out = torch.empty_like(x)
op(out, x, w)  # eagerly: no torch.compile
out64 = torch.empty(15, dtype=torch.float64)
op(out64, x.double(), w.double())  # float64 through the same op

def doubled(x, w):
    out = torch.empty_like(x)
    op(out, x, w)
    return out * 2

explained = torch._dynamo.explain(doubled)(x, w)
print(json.dumps({
    "eager": out.tolist(),
    "float64": out64.tolist(),
    "same_op": op is ops.conv1d[{"conv_size": 4, "input_size": 15}],
    "registered": hasattr(torch.ops.max.torch, "conv1d_conv_size_4input_size_15"),
    "graphs": [explained.graph_count, explained.graph_break_count],
    "no_output": error(lambda: op(x, w)),
    "no_output_compiled": error(lambda: torch.compile(op)(x, w)),
    "bad_key": error(lambda: ops.conv1d[{"n": 15, "conv_size": 4}](out, x, w)),
    "bad_size": error(lambda: ops.conv1d[{"input_size": 14, "conv_size": 4}](out, x, w)),
    "mixed_dtypes": error(lambda: op(torch.empty_like(x), x, w.double())),
}))
"""


@pytest.fixture(scope="module")
def claims(runs) -> dict:
    """SLOW (about 20 s): loads the op package once more and calls the op the
    ways the chapter describes. Depends on `runs` so the processes never
    overlap."""
    result = subprocess.run(
        [sys.executable, "-c", CLAIMS_SCRIPT, str(SOLUTION.parent / "op")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def page(built: Path, lang: str, rel: str) -> str:
    return (built / OUT[lang] / rel).read_text(encoding="utf-8")


# -- building -------------------------------------------------------------------


def test_both_books_build_without_warnings(built):
    # --strict (in the fixture) already fails on any WARN or ERROR line.
    for lang in LANGS:
        for rel in ("index.html", "introduction.html", "puzzle_20/puzzle_20.html", "print.html"):
            assert (built / OUT[lang] / rel).is_file(), f"{lang}: {rel} was not built"


def test_pages_declare_their_language(built):
    # puzzle.js's language switch reads <html lang>.
    for lang in LANGS:
        for rel in ("index.html", "puzzle_20/puzzle_20.html"):
            assert f'<html lang="{lang}"' in page(built, lang, rel), f"{lang}/{rel}"


def test_every_page_has_a_counterpart_in_the_other_language(built):
    # The switch in the menu bar links to the same path in the other book.
    def pages(lang):
        root = built / OUT[lang]
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*.html")
            if not p.is_relative_to(built / FILES) and not (lang == "en" and p.is_relative_to(built / "ko"))
        }

    assert pages("en") == pages("ko")


def test_shared_theme_reaches_both_books(built):
    for lang in LANGS:
        chapter = page(built, lang, "puzzle_20/puzzle_20.html")
        for kind, ext in (("stylesheet", "css"), ("script", "js")):
            refs = re.findall(rf'"(\.\./theme/puzzle[^"]*\.{ext})"', chapter)
            assert refs, f"{lang}: the chapter does not load theme/puzzle.{ext}"
            assert (built / OUT[lang] / "puzzle_20" / refs[0]).resolve().is_file()


# -- includes -------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_includes_and_anchors_exist(lang):
    found = 0
    for md in markdown_files(lang):
        for target, anchor in includes(md):
            found += 1
            where = f"{md.relative_to(REPO)} includes {target}"
            assert target.is_relative_to(REPO), f"{where}: outside the repository"
            assert target.is_file(), f"{where}: no such file"
            if anchor is not None and not re.fullmatch(r"[\d:]+", anchor):
                text = target.read_text(encoding="utf-8")
                assert re.search(rf"\bANCHOR:\s*{re.escape(anchor)}\b", text), f"{where}: no ANCHOR: {anchor}"
                assert re.search(rf"\bANCHOR_END:\s*{re.escape(anchor)}\b", text), f"{where}: no ANCHOR_END: {anchor}"
    assert found >= 4, f"{lang}: expected the chapter's includes, found {found}"


@pytest.mark.parametrize("lang", LANGS)
def test_both_languages_quote_the_same_code(lang):
    def key(lang, target):
        # A book's own files (the URL include) by their place in that book.
        if target.is_relative_to(SRC[lang]):
            return "<book>/" + target.relative_to(SRC[lang]).as_posix()
        return target.relative_to(REPO).as_posix()

    def quoted(lang):
        return sorted((key(lang, t), a) for md in markdown_files(lang) for t, a in includes(md))

    assert quoted(lang) == quoted("en")


class _CodeBlocks(HTMLParser):
    """The text of every <pre><code> block of a page, unescaped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag == "code" and self.lasttag_was_pre:
            self._depth += 1
            self.blocks.append("")
        self.lasttag_was_pre = tag == "pre"

    def handle_endtag(self, tag):
        if tag == "code" and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.blocks[-1] += data

    lasttag_was_pre = False


def code_blocks(text: str) -> list[str]:
    parser = _CodeBlocks()
    parser.feed(text)
    return parser.blocks


@pytest.mark.parametrize("lang", LANGS)
def test_rendered_chapter_contains_the_quoted_code(built, lang):
    blocks = code_blocks(page(built, lang, "puzzle_20/puzzle_20.html"))
    checked = 0
    for target, anchor in includes(SRC[lang] / CHAPTER):
        if target.suffix == ".md":
            continue  # the repository URL, checked below
        expected = anchored(target.read_text(encoding="utf-8"), anchor).strip("\n")
        assert expected.strip(), f"{target}:{anchor} is empty"
        assert any(expected in block for block in blocks), (
            f"{lang}: the rendered chapter has no code block containing {target.name}:{anchor}"
        )
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("lang", LANGS)
def test_solution_and_problem_lines_are_the_ones_shown(built, lang):
    """The chapter shows the problem's placeholder line and the solution's line."""
    text = page(built, lang, "puzzle_20/puzzle_20.html")
    solution_line = anchored(SOLUTION.read_text(encoding="utf-8"), "conv1d_pytorch_call").strip()
    problem_line = anchored(PROBLEM.read_text(encoding="utf-8"), "conv1d_pytorch_call").strip()
    assert solution_line != problem_line, "problems/ and solutions/ have the same line: nothing to solve"
    details = re.search(r'<details class="solution-details">(.*?)</details>', text, re.S)
    assert details, f"{lang}: no collapsible solution"
    assert re.search(r"<summary>\s*\S", details.group(1)), f"{lang}: the solution's <summary> is empty"
    assert any(solution_line in block for block in code_blocks(details.group(1)))
    assert not any(problem_line in block for block in code_blocks(details.group(1)))
    assert any(problem_line in block for block in code_blocks(text[: details.start()]))
    assert not any(solution_line in block for block in code_blocks(text[: details.start()]))


# -- links to repository files --------------------------------------------------


def repo_links(md: Path) -> list[tuple[str, str]]:
    """(path, #fragment or "") of every repo: link in a Markdown file."""
    return REPO_LINK.findall(md.read_text(encoding="utf-8"))


def linked_paths(lang: str) -> set[str]:
    return {path for md in markdown_files(lang) for path, _ in repo_links(md)}


def tracked(path: str) -> bool:
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=REPO, capture_output=True)
    return result.returncode == 0


@pytest.mark.parametrize("lang", LANGS)
def test_repo_links_name_files_of_the_repository(lang):
    links = [(md, path) for md in markdown_files(lang) for path, _ in repo_links(md)]
    assert len(links) >= 20, f"{lang}: expected the book's links to repository files, found {len(links)}"
    for md, path in links:
        where = f"{md.relative_to(REPO)}: repo:{path}"
        assert (REPO / path).is_file(), f"{where}: no such file"
        if path.startswith("logs/"):
            assert tracked(path), f"{where}: not tracked by git, so not in the published repository"


def test_both_languages_link_the_same_files():
    assert linked_paths("ko") == linked_paths("en")
    for md in ("introduction.md", CHAPTER):
        assert sorted(repo_links(SRC["ko"] / md)) == sorted(repo_links(SRC["en"] / md)), md


def test_the_repository_address_is_one_setting():
    """repository-url lives in book/book.toml alone; no book page writes an
    address of the repository or a placeholder for one."""
    configs = {}
    for lang, toml in (("en", BOOK / "book.toml"), ("ko", BOOK / "i18n" / "ko" / "book.toml")):
        with toml.open("rb") as f:
            configs[lang] = tomllib.load(f)["preprocessor"]["repo-files"]
        *_, script, subcommand = configs[lang]["command"].split()
        assert subcommand == "preprocess" and (toml.parent / script).resolve() == BOOK / "build.py", lang
    assert "repository-url" in configs["en"]
    assert "repository-url" not in configs["ko"], "the Korean book reads the address from book/book.toml"
    for lang in LANGS:
        assert not (SRC[lang] / "_includes").exists(), f"{lang}: the address lives in book/book.toml now"
        for md in markdown_files(lang):
            text = md.read_text(encoding="utf-8")
            assert "/blob/main/" not in text and "_includes" not in text, f"{md}: link repository files as repo:PATH"


def links_out_of(path: Path) -> list[str]:
    return parse_links(path).refs


def book_pages(built: Path, lang: str) -> list[Path]:
    root = built / OUT[lang]
    return [
        p
        for p in sorted(root.rglob("*.html"))
        if not p.is_relative_to(built / FILES) and not (lang == "en" and p.is_relative_to(built / "ko"))
    ]


def copy_of(built: Path, page_path: Path, ref: str) -> tuple[Path, str] | None:
    """(the file a link reaches under files/, its fragment), or None for
    links that go elsewhere."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = (page_path.parent / unquote(parts.path)).resolve()
    return (target, parts.fragment) if target.is_relative_to(built / FILES) else None


def repository_path(built: Path, target: Path) -> str:
    """The repository file a copy under files/ stands for: a page for a
    Markdown or source file, or the file itself."""
    rel = target.relative_to(built / FILES).as_posix()
    for suffix in (".py", ".mojo"):
        if rel.endswith(suffix + ".html"):
            return rel[: -len(".html")]
    return rel[: -len(".html")] + ".md" if rel.endswith(".html") else rel


@pytest.mark.parametrize("lang", LANGS)
def test_links_to_repository_files_reach_the_copies(built, lang):
    """Every repo: link of the book, on its own page and in print.html,
    becomes a relative link to a copy under files/ that exists, fragment
    included; no repo: link survives."""
    for page_path in book_pages(built, lang):
        refs = links_out_of(page_path)
        assert not [r for r in refs if r.startswith("repo:")], f"{page_path}: a repo: link was not rewritten"
    for rel in ("introduction.html", "puzzle_20/puzzle_20.html", "print.html"):
        page_path = built / OUT[lang] / rel
        reached = set()
        for ref in links_out_of(page_path):
            found = copy_of(built, page_path, ref)
            if found is None:
                continue
            target, fragment = found
            assert target.is_file(), f"{lang}/{rel}: {ref} -> no file {target}"
            if fragment:
                assert fragment in parse_links(target).ids, f"{lang}/{rel}: {ref} -> no id {fragment!r}"
            reached.add(repository_path(built, target))
        md = {"introduction.html": ["introduction.md"], "puzzle_20/puzzle_20.html": [CHAPTER]}.get(rel)
        expected = {p for m in md for p, _ in repo_links(SRC[lang] / m)} if md else linked_paths(lang)
        assert reached == expected, f"{lang}/{rel}: links reach {sorted(reached ^ expected)} differently"


def test_the_copies_are_the_repository_files(built):
    files = built / FILES
    copied = [p for p in files.rglob("*") if p.is_file() and (REPO / p.relative_to(files)).is_file()]
    wanted = linked_paths("en") | linked_paths("ko")
    # Markdown files become pages (below); every other linked file is copied.
    raw = {p for p in wanted if not p.endswith(".md")}
    assert raw <= {p.relative_to(files).as_posix() for p in copied}, "a linked file was not copied"
    for copy in copied:
        assert copy.read_bytes() == (REPO / copy.relative_to(files)).read_bytes(), f"{copy} differs"
    # Source files also have a page that shows them whole.
    for path in wanted:
        if path.endswith((".py", ".mojo")):
            blocks = code_blocks((files / f"{path}.html").read_text(encoding="utf-8"))
            assert (REPO / path).read_text(encoding="utf-8").strip() in [b.strip() for b in blocks], path
        if path.endswith(".md"):
            # The page is the file rendered: its title is there as a heading.
            title = re.search(r"^# (.+)$", (REPO / path).read_text(encoding="utf-8"), re.M).group(1)
            slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            assert slug in parse_links((files / path).with_suffix(".html")).ids, path


@pytest.mark.parametrize("lang", LANGS)
def test_every_quoted_file_has_a_link_to_the_whole_file(built, lang):
    text = page(built, lang, "puzzle_20/puzzle_20.html")
    page_path = built / OUT[lang] / "puzzle_20" / "puzzle_20.html"
    whole = set()
    for ref in re.findall(r'<a href="([^"]+)" class="filename">', text):
        found = copy_of(built, page_path, ref)
        assert found and found[0].is_file(), f"{lang}: {ref} does not reach a copy"
        whole.add(repository_path(built, found[0]))
    quoted = {target.relative_to(REPO).as_posix() for target, _ in includes(SRC[lang] / CHAPTER)}
    assert quoted == whole


@pytest.mark.parametrize("lang", LANGS)
def test_with_a_repository_url_links_go_to_the_repository(built_for_repository, lang):
    assert not (built_for_repository / FILES).exists(), "no copies are needed then"
    for rel, sources in (("introduction.html", ["introduction.md"]), ("puzzle_20/puzzle_20.html", [CHAPTER])):
        page_path = built_for_repository / OUT[lang] / rel
        refs = links_out_of(page_path)
        assert not [r for r in refs if r.startswith("repo:") or "files/" in r], f"{lang}/{rel}"
        linked = {r[len(EXAMPLE_URL) + len("/blob/main/") :] for r in refs if r.startswith(EXAMPLE_URL + "/blob/main/")}
        expected = {p + f for m in sources for p, f in repo_links(SRC[lang] / m)}
        assert linked == expected


def test_a_link_to_a_missing_file_stops_the_build(tmp_path):
    """The preprocessor refuses repo: links to files that do not exist."""
    context = {"root": str(BOOK), "config": {"preprocessor": {"repo-files": {"repository-url": ""}}}}

    def preprocess(content):
        book = {"items": [{"Chapter": {"name": "x", "content": content, "path": "x.md", "sub_items": []}}]}
        return subprocess.run(
            [sys.executable, str(BOOK / "build.py"), "preprocess"],
            input=json.dumps([context, book]),
            capture_output=True,
            text=True,
        )

    result = preprocess("[a](repo:no/such/file.txt)")
    assert result.returncode != 0 and "repo:no/such/file.txt" in result.stderr
    result = preprocess("[a](repo:README.md#the-op) <a href=\"repo:logs\">")
    assert result.returncode != 0, "a folder is not a file"
    result = preprocess("[a](repo:README.md#the-op)")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"][0]["Chapter"]["content"] == "[a](files/README.md#the-op)"


# -- blocks checked against the repository -------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_quoted_snippets_are_verbatim(lang):
    blocks = checked_blocks(lang, "quoted from solutions/p20/p20.py")
    assert len(blocks) >= 2, f"{lang}: the chapter's quoted snippets went missing"
    source = SOLUTION.read_text(encoding="utf-8")
    source_lines = source.splitlines()
    for block in blocks:
        lines = block.splitlines()
        if len(lines) == 1:
            assert lines[0].strip() in source, f"{lang}: not in {SOLUTION.name}: {lines[0]!r}"
            continue
        # Several lines: consecutive lines of the file, with a common indent.
        matched = False
        for i in range(len(source_lines) - len(lines) + 1):
            indent = source_lines[i][: len(source_lines[i]) - len(source_lines[i].lstrip())]
            if all(
                source_lines[i + k] == (indent + line if line else "") for k, line in enumerate(lines)
            ):
                matched = True
                break
        assert matched, f"{lang}: not a verbatim part of {SOLUTION.name}:\n{block}"


def without_device(text: str) -> str:
    """The device line depends on the machine; everything else must match."""
    return DEVICE.sub("(device: *)", text).rstrip("\n")


@pytest.mark.parametrize("lang", LANGS)
def test_expected_output_is_what_the_solution_prints(runs, lang):
    run = runs["solution"]
    assert run.returncode == 0, f"the solution failed:\n{run.stdout}\n{run.stderr}"
    blocks = checked_blocks(lang, "stdout of solutions/p20/p20.py")
    assert len(blocks) == 1, f"{lang}: expected one expected-output block, found {len(blocks)}"
    shown = without_device(blocks[0])
    printed = without_device(run.stdout)
    assert "(device: *)" in printed
    assert shown == printed


@pytest.mark.parametrize("lang", LANGS)
def test_unsolved_output_is_what_the_problem_prints(runs, lang):
    run = runs["problem"]
    assert run.returncode == 1, f"the unsolved problem should exit 1, got {run.returncode}:\n{run.stdout}\n{run.stderr}"
    blocks = checked_blocks(lang, "end of stdout of problems/p20/p20.py")
    assert len(blocks) == 1, f"{lang}: expected one block of the unsolved run's output, found {len(blocks)}"
    shown = without_device(blocks[0]).splitlines()
    printed = without_device(run.stdout).splitlines()
    assert printed[-len(shown) :] == shown


# -- statements about the code ----------------------------------------------------


def test_the_op_works_without_torch_compile(claims):
    """The chapter says an eager call works with the pinned versions."""
    assert claims["eager"] == [14, 20, 26, 32, 38, 44, 50, 56, 62, 68, 74, 80, 41, 14, 0]
    for lang in LANGS:
        assert "torch.compile" in chapter_text(lang) and "std::bad_alloc" in chapter_text(lang)


def test_the_errors_the_chapter_quotes_are_real(claims):
    kind, message = claims["no_output"]
    assert kind == "RuntimeError" and "missing value for argument 'kernel'" in message
    kind, compiled_message = claims["no_output_compiled"]
    assert kind == "TorchRuntimeError" and "missing value for argument 'kernel'" in compiled_message
    kind, key_message = claims["bad_key"]
    assert kind == "ValueError"
    kind, size_message = claims["bad_size"]
    assert kind == "ValueError" and "conv1d: input and output must have input_size elements" in size_message
    kind, dtype_message = claims["mixed_dtypes"]
    assert kind == "RuntimeError" and dtype_message.startswith("Failed to compile the model")
    for lang in LANGS:
        text = " ".join(chapter_text(lang).split())
        assert "RuntimeError: max::torch() is missing value for argument 'kernel'." in text
        assert "torch._dynamo.exc.TorchRuntimeError" in text
        assert f"ValueError: {key_message}" in text
        assert "`conv1d: input and output must have input_size elements`" in text
        assert "RuntimeError: Failed to compile the model" in text


def test_what_the_chapter_says_about_the_parameter_dict_and_dynamo(claims):
    assert claims["same_op"], "ops.conv1d[...] should return the same op for the same dict"
    assert claims["registered"], "the specialization's PyTorch name changed"
    assert claims["float64"] == [14, 20, 26, 32, 38, 44, 50, 56, 62, 68, 74, 80, 41, 14, 0]
    assert claims["graphs"] == [1, 0], "allocate, call the op, double: one graph, no breaks"
    for lang in LANGS:
        text = chapter_text(lang)
        assert "torch.ops.max.torch.conv1d_conv_size_4input_size_15" in text
        assert "fullgraph=True" in text


def kernel_constants() -> dict[str, int]:
    """The numbers "How the kernels work" states, from the `comptime`
    constants of every module of the Mojo package, and from the lines of
    gpu.mojo and window.mojo that decide which kernel runs with what shape."""
    exprs = {}
    for module in sorted(KERNELS.glob("*.mojo")):
        exprs.update(re.findall(r"^comptime (\w+) = ([^#\n]*?)\s*(?:#.*)?$", module.read_text(encoding="utf-8"), re.M))

    def value(name: str) -> int:
        # Integer arithmetic over other constants only (e.g. THREADS * OUTPUTS_PER_THREAD).
        expr = exprs[name]
        assert re.fullmatch(r"[\w\s*+<()-]+", expr), f"{name} = {expr}: not plain integer arithmetic"
        names = set(re.findall(r"[A-Za-z_]\w*", expr))
        return eval(expr, {"__builtins__": {}}, {n: value(n) for n in names})

    gpu = (KERNELS / "gpu.mojo").read_text(encoding="utf-8")
    window = (KERNELS / "window.mojo").read_text(encoding="utf-8")
    # The kernels gpu.mojo launches for short filters: the short kernel (one
    # 16-byte vector of outputs per thread, SMALL_THREADS per block), and the
    # window kernel's one shape: [dtype, R, T, groups, taps, block].
    assert "correlate_short_gpu_kernel[dtype, D, KMAX, U, X == 1, E == 1]" in gpu
    # The exact kernel: SMALL_STEP taps aligned for one load, in rows of 32-bit indices.
    assert "var exact = known_k == 0 and whole and k == SMALL_STEP and" in gpu
    assert "comptime KMAX = SMALL_STEP if KM == 0 else SMALL_K" in gpu
    assert "block_dim=SMALL_THREADS" in gpu
    assert "comptime R = VW  # outputs per thread and tile: one vector" in window
    assert "correlate_window_gpu_kernel[dtype, R, R, 1, WINDOW_K, THREADS]" in gpu
    assert "comptime R = window_outputs[dtype]()" in gpu
    assert "comptime VW = 16 // size_of[dtype]()" in gpu
    # float32 stops at SMALL_K, the others go on to WINDOW_K; float64's long shape is narrower.
    assert "return SMALL_K if dtype == DType.float32 else WINDOW_K" in window
    long_f64, long_other = map(int, re.search(r"return (\d+) if size_of\[dtype\]\(\) == 8 else (\d+)", window).groups())
    # Tensor cores: float32 and bfloat16 only, and only in a build for Hopper.
    tensor_cores = (KERNELS / "tensor_cores.mojo").read_text(encoding="utf-8")
    assert '(dtype == DType.float32 or dtype == DType.bfloat16) and DeviceContext.default_device_info.version == "sm_90a"' in tensor_cores
    tc_min_f32, tc_min_bf16 = map(int, re.search(r"return (\d+) if dtype == DType.float32 else (\d+)", tensor_cores).groups())
    # The short kernel's launch bound: blocks per multiprocessor up to SMALL_STEP taps (32-bit or narrower data).
    short_blocks_per_sm = int(re.search(r"return (\d+) if KMAX == SMALL_STEP and size_of\[dtype\]\(\) < 8 else \d+", window).group(1))
    assert "`nvvm.minctasm`=SIMDLength(short_blocks_per_sm[dtype, KMAX]())" in window
    assert "if k <= CPU_SERIAL_MAX_K and rows * out_n < CPU_SERIAL_MAX_OUTPUTS:" in (KERNELS / "cpu.mojo").read_text(
        encoding="utf-8"
    )
    # The puzzle's op passes its compile-time conv_size on, so only its kernels are built.
    assert "correlate[target, dtype, known_k=conv_size](" in (KERNELS / "conv1d.mojo").read_text(encoding="utf-8")
    assert "comptime if known_k == 0 or known_k <= SMALL_K:" in gpu
    # Blocks take several batches only where a row is one tile.
    assert "min(batches, rows // GROUP_BLOCKS)) if tiles_per_row == 1 else 1" in gpu
    # Two tiles a pass: 16-bit data up to SMALL_STEP taps, a block walking its row in order.
    assert "var pairs = size_of[dtype]() == 2 and K <= SMALL_STEP" in gpu
    assert "var per_pass = 2 if pairs and splits == 1 and tiles_per_row >= 2 else 1" in gpu
    # Long float32 rows: blocks of SPLIT_TILES tiles, the splits the grid's x.
    assert "size_of[dtype]() == 4 and K <= SMALL_STEP and tiles_per_row >= LONG_ROW_TILES and rows > 1" in gpu
    assert "splits = ceildiv(tiles_per_row, SPLIT_TILES)" in gpu

    per_thread = value("OUTPUTS_PER_THREAD")
    return {
        "threads": value("THREADS"),
        "per_thread": per_thread,
        "tile": value("TILE"),
        "k_chunk": value("K_CHUNK"),
        "window": 2 * per_thread,
        "fmas": per_thread * per_thread,
        "small_k": value("SMALL_K"),
        "window_k": value("WINDOW_K"),
        "small_threads": value("SMALL_THREADS"),
        # a short-kernel thread owns one 16-byte vector: 16 // the element size
        "f32_vector": 16 // 4,
        "f16_vector": 16 // 2,
        "f64_vector": 16 // 8,
        "short_blocks_per_sm": short_blocks_per_sm,
        "short_registers": 65536 // (short_blocks_per_sm * value("SMALL_THREADS")),
        "small_step": value("SMALL_STEP"),
        "short_blocks": value("SHORT_BLOCKS"),
        "group_blocks": value("GROUP_BLOCKS"),
        "long_row_tiles": value("LONG_ROW_TILES"),
        "split_tiles": value("SPLIT_TILES"),
        "long_outputs": long_other,
        "long_f64": long_f64,
        "tc_min_k": tc_min_f32,
        "tc_min_bf16": tc_min_bf16,
        "tc_max_k": value("TC_MAX_K"),
        "tc_tile": value("TC_TILE"),
        "tc_threads": value("TC_THREADS"),
        "cpu_chunk": value("CPU_CHUNK"),
        "cpu_serial": value("CPU_SERIAL_MAX_K"),
        "cpu_serial_outputs_log2": value("CPU_SERIAL_MAX_OUTPUTS").bit_length() - 1,
    }


# How each chapter states those numbers, in "How the kernels work".
STATED = {
    "en": [
        "A block has {threads} threads and each thread accumulates {per_thread} consecutive outputs",
        "a tile of {tile} outputs",
        "Taps are staged {k_chunk} at a time",
        "a window of {window} staged inputs against {per_thread} taps and does {fmas} multiply-adds",
        "for filters of at most {small_k} taps",
        "takes filters of up to {window_k} taps",
        "A thread owns one 16-byte vector of outputs: {f32_vector} in float32, {f16_vector} in float16 and "
        "bfloat16, {f64_vector} in float64",
        "Blocks have {small_threads} threads.",
        "up to {small_step} taps a thread\nkeeps to {short_registers} registers, so that a multiprocessor holds {short_blocks_per_sm} blocks",
        "until there are about {short_blocks} of them",
        "as many as leave about {group_blocks} blocks",
        "float32 rows of {long_row_tiles} tiles or more go to blocks of {split_tiles} tiles",
        "A thread owns {long_outputs} consecutive outputs ({long_f64} in float64",
        "the window moves {long_outputs} taps per step ({long_f64} in float64). Blocks have {threads} threads.",
        "from {small_k_plus_1} taps on the tiled kernel",
        "| 1 to {small_k} |",
        "| {small_k_plus_1} to {window_k} |",
        "| {tc_min_k} to {tc_max_k} | tensor cores on Hopper",
        "float32 filters of {tc_min_k} to {tc_max_k} taps and bfloat16 filters of {tc_min_bf16} to {tc_max_k}",
        "a tile of {tc_tile} outputs",
        "{tc_threads} threads per block",
        "work items of {cpu_chunk} outputs",
        "Up to {cpu_serial} taps the calling thread",
        "unless the call has 2^{cpu_serial_outputs_log2} outputs or more",
    ],
    "ko": [
        "블록 하나는 스레드 {threads}개로 이루어지고, 스레드마다 연속된 출력 {per_thread}개를 레지스터에 누적",
        "출력 {tile}개짜리 타일",
        "탭은 한 번에 {k_chunk}개씩",
        "입력 {window}개짜리 창을 탭 {per_thread}개에 대고 밀면서 레지스터에서 곱셈-덧셈 {fmas}번",
        "탭이 {small_k}개 이하인 필터용",
        "탭이 {window_k}개까지인 필터용",
        "float32는 {f32_vector}개, float16과 bfloat16은 {f16_vector}개, float64는 {f64_vector}개",
        "블록은 스레드 {small_threads}개입니다.",
        "탭이 {small_step}개 이하이면 스레드가\n레지스터를 {short_registers}개만 쓰므로 멀티프로세서 하나가 블록 {short_blocks_per_sm}개를",
        "블록이 모두 {short_blocks}개 안팎이 될 때까지",
        "블록이 모두 {group_blocks}개\n안팎으로 남을 만큼만",
        "타일이 {long_row_tiles}개 이상인 float32 행은 타일 {split_tiles}개짜리 블록으로",
        "연속된 출력 {long_outputs}개를 맡고(float64는",
        "레지스터 두 개를 차지하므로 {long_f64}개)",
        "창은 한 단계에 탭 {long_outputs}개씩 움직입니다(float64는 {long_f64}개). 블록은 스레드 {threads}개입니다.",
        "탭이 {small_k_plus_1}개 이상이면 타일 커널이",
        "| 1~{small_k} |",
        "| {small_k_plus_1}~{window_k} |",
        "| {tc_min_k}~{tc_max_k} | Hopper에서는 텐서 코어",
        "탭 {tc_min_k}~{tc_max_k}개인 float32 필터와 탭 {tc_min_bf16}~{tc_max_k}개인 bfloat16 필터",
        "출력 {tc_tile}개짜리 타일",
        "블록은 스레드 {tc_threads}개입니다",
        "출력 {cpu_chunk}개짜리 작업 단위",
        "탭이 {cpu_serial}개 이하이면 호출한 스레드가",
        "호출의 출력이 2^{cpu_serial_outputs_log2}개 이상이면 예외입니다",
    ],
}


@pytest.mark.parametrize("lang", LANGS)
def test_kernel_numbers_in_the_chapter_match_the_kernels(lang):
    values = kernel_constants()
    values["small_k_plus_1"] = values["small_k"] + 1
    # Compare with line breaks and runs of spaces folded into one space.
    text = " ".join(chapter_text(lang).split())
    used = set()
    for template in STATED[lang]:
        phrase = " ".join(template.format(**values).split())
        used |= set(re.findall(r"\{(\w+)\}", template))
        assert phrase in text, f"{lang}: the chapter should say {phrase!r}"
    assert used >= set(values), f"{lang}: numbers not checked: {set(values) - used}"


@pytest.mark.parametrize("lang", LANGS)
def test_stated_max_and_mojo_versions_are_the_pinned_ones(lang):
    with (REPO / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    pins = dict(re.fullmatch(r"(max|mojo)==(\S+)", d).groups() for d in deps if re.fullmatch(r"(max|mojo)==\S+", d))
    assert set(pins) == {"max", "mojo"}, f"pyproject.toml no longer pins max and mojo exactly: {deps}"
    for rel in ("introduction.md", CHAPTER):
        text = (SRC[lang] / rel).read_text(encoding="utf-8")
        stated = re.findall(r"\b(MAX|Mojo) (\d+\.\d+\.\d+)", text)
        assert stated, f"{lang}/{rel}: states no MAX or Mojo version"
        for name, version in stated:
            assert pins[name.lower()] == version, f"{lang}/{rel}: says {name} {version}, pyproject pins {pins[name.lower()]}"


# -- links --------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.refs.append(attrs[key])


def parse_links(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_resolve(built):
    pages = sorted(built.rglob("*.html"))
    # 404.html is served from the site root through <base href="/">; its links
    # depend on where the book is hosted, so it is left out.
    pages = [p for p in pages if p.name != "404.html"]
    assert len(pages) >= 8
    parsed = {p: parse_links(p) for p in pages}
    broken = []
    checked = 0
    for page_path, links in parsed.items():
        for ref in links.refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc or ref.startswith(("/", "javascript:", "mailto:", "data:")):
                continue
            target = (page_path.parent / unquote(parts.path)).resolve() if parts.path else page_path
            checked += 1
            if not target.is_relative_to(built) or not target.is_file():
                broken.append(f"{page_path.relative_to(built)}: {ref} -> missing {target}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else parse_links(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page_path.relative_to(built)}: {ref} -> no id {parts.fragment!r}")
    assert checked > 100
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_introductions_link_to_each_other(built):
    assert 'href="ko/index.html"' in page(built, "en", "introduction.html")
    assert 'href="../index.html"' in page(built, "ko", "introduction.html")


# -- markup puzzle.js works on -----------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_tabs_have_one_panel_per_button(built, lang):
    text = page(built, lang, "puzzle_20/puzzle_20.html")
    groups = re.findall(r'<div class="code-tabs"[^>]*>(.*?)\n</div>', text, re.S)
    assert groups, f"{lang}: no tabs"
    for group in groups:
        buttons = re.findall(r'<button class="tab-button">([^<]+)</button>', group)
        panels = re.findall(r'<div class="tab-content">', group)
        # uv, the tested front door, is the first tab and so the one shown.
        assert buttons == ["uv", "pixi NVIDIA", "pixi AMD", "pixi CPU / Mac"]
        assert len(panels) == len(buttons)
        commands = [c.strip() for c in re.findall(r'<code class="language-bash">(.*?)</code>', group, re.S)]
        assert commands == ["uv run poe p20", "pixi run p20", "pixi run -e amd p20", "pixi run -e cpu p20"]
        # Every environment a tab names is one pixi.toml defines.
        with (REPO / "pixi.toml").open("rb") as f:
            environments = tomllib.load(f)["environments"]
        assert {e for c in commands for e in re.findall(r"-e (\w+)", c)} <= set(environments)


def test_tasks_named_in_the_book_exist():
    with (REPO / "pyproject.toml").open("rb") as f:
        poe = tomllib.load(f)["tool"]["poe"]["tasks"]
    named = set()
    for lang in LANGS:
        for md in markdown_files(lang):
            named |= set(re.findall(r"(?:uv run poe|pixi run(?: -e \w+)?) ([\w-]+)", md.read_text(encoding="utf-8")))
    assert named >= {"p20", "p20-solution", "book"}
    assert named <= set(poe), f"tasks named in the book but not defined: {named - set(poe)}"
