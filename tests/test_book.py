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
KERNELS = REPO / "solutions" / "p20" / "op" / "kernels.mojo"

INCLUDE = re.compile(r"\{\{#include\s+([^}:\s]+)(?::([^}\s]+))?\s*\}\}")
CHECK = re.compile(r"<!-- check: (.+?) -->\n```[^\n]*\n(.*?)\n```", re.S)
DEVICE = re.compile(r"\(device: [a-z]+\)")


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


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run(
        [sys.executable, str(BOOK / "build.py"), "--out", str(out), "--strict"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"book/build.py --strict failed (exit {result.returncode}):\n{log}"
    return out


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
print(json.dumps({
    "eager": out.tolist(),
    "no_output": error(lambda: op(x, w)),
    "bad_key": error(lambda: ops.conv1d[{"n": 15, "conv_size": 4}](out, x, w)),
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
        return {p.relative_to(root).as_posix() for p in root.rglob("*.html") if not (lang == "en" and p.is_relative_to(built / "ko"))}

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
    assert found >= 6, f"{lang}: expected the chapter's includes, found {found}"


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


def test_repository_url_lives_in_one_place_per_book(built):
    urls = {}
    for lang in LANGS:
        url_file = SRC[lang] / "_includes" / "repo_url.md"
        url = url_file.read_text(encoding="utf-8")
        assert re.fullmatch(r"https://\S+[^/\s]", url), f"{url_file}: one URL, no newline, no trailing slash"
        urls[lang] = url
        for md in markdown_files(lang):
            assert url not in md.read_text(encoding="utf-8"), f"{md}: write the URL through the include"
        chapter = page(built, lang, "puzzle_20/puzzle_20.html")
        assert f'href="{url}/blob/main/problems/p20/p20.py"' in chapter
    assert urls["en"] == urls["ko"]


# -- blocks checked against the repository -------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_quoted_snippets_are_verbatim(lang):
    blocks = checked_blocks(lang, "quoted from solutions/p20/p20.py")
    assert len(blocks) >= 3, f"{lang}: the chapter's quoted snippets went missing"
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
    kind, message = claims["bad_key"]
    assert kind == "ValueError"
    for lang in LANGS:
        text = " ".join(chapter_text(lang).split())
        assert "RuntimeError: max::torch() is missing value for argument 'kernel'." in text
        assert f"ValueError: {message}" in text


def kernel_constants() -> dict[str, int]:
    text = KERNELS.read_text(encoding="utf-8")
    found = dict(re.findall(r"^comptime (\w+) = ([^#\n]*?)\s*(?:#.*)?$", text, re.M))
    threads = int(found["THREADS"])
    per_thread = int(found["OUTPUTS_PER_THREAD"])
    assert found["TILE"] == "THREADS * OUTPUTS_PER_THREAD", "the tile is sized differently now: update the book and this test"
    return {
        "threads": threads,
        "per_thread": per_thread,
        "tile": threads * per_thread,
        "k_chunk": int(found["K_CHUNK"]),
        "small_k": int(found["SMALL_K"]),
        "window_k": int(found["WINDOW_K"]),
        "cpu_chunk": int(found["CPU_CHUNK"]),
        "window": 2 * per_thread,
        "fmas": per_thread * per_thread,
    }


# How each chapter states those numbers, in "Going further".
STATED = {
    "en": {
        "threads": "A block has {} threads",
        "per_thread": "each thread accumulates {} consecutive",
        "tile": "a tile of {} outputs",
        "k_chunk": "Taps are staged {} at a time",
        "small_k": "For kernels of at most {} taps",
        "window_k": "takes kernels of up to {} taps",
        "cpu_chunk": "chunks of {}\noutputs",
        "window": "a window of {} staged inputs",
        "fmas": "does {} multiply-adds",
    },
    "ko": {
        "threads": "스레드 {}개로",
        "per_thread": "연속된 출력 {}개를",
        "tile": "출력 {}개짜리 타일",
        "k_chunk": "한 번에 {}개씩",
        "small_k": "탭이 {}개 이하인 커널",
        "window_k": "탭이 {}개까지인 커널",
        "cpu_chunk": "출력 {}개짜리 청크",
        "window": "입력 {}개짜리 창",
        "fmas": "곱셈-덧셈 {}번",
    },
}


@pytest.mark.parametrize("lang", LANGS)
def test_kernel_numbers_in_the_chapter_match_kernels_mojo(lang):
    text = chapter_text(lang)
    for name, value in kernel_constants().items():
        phrase = STATED[lang][name].format(value)
        # Compare with line breaks and runs of spaces folded into one space.
        assert " ".join(phrase.split()) in " ".join(text.split()), f"{lang}: the chapter should say {phrase!r}"


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
        assert buttons == ["pixi NVIDIA (default)", "pixi AMD", "uv"]
        assert len(panels) == len(buttons)
        commands = [c.strip() for c in re.findall(r'<code class="language-bash">(.*?)</code>', group, re.S)]
        assert commands == ["pixi run p20", "pixi run -e amd p20", "uv run poe p20"]


def test_tasks_named_in_the_book_exist():
    with (REPO / "pyproject.toml").open("rb") as f:
        poe = tomllib.load(f)["tool"]["poe"]["tasks"]
    named = set()
    for lang in LANGS:
        for md in markdown_files(lang):
            named |= set(re.findall(r"(?:uv run poe|pixi run(?: -e \w+)?) ([\w-]+)", md.read_text(encoding="utf-8")))
    assert named >= {"p20", "p20-solution", "book"}
    assert named <= set(poe), f"tasks named in the book but not defined: {named - set(poe)}"
