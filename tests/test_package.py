"""The op as a package: the wheel carries the Mojo sources it builds from
(and nothing of the puzzle, the tests or the logs), and no file of the repo
reaches for its modules by editing sys.path."""

import re
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # hatchling's PEP 517 hook, as pip and uv call it, without a network.
    out = tmp_path_factory.mktemp("wheel")
    build = "import sys, hatchling.build as b; print(b.build_wheel(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


def test_wheel_holds_the_package_and_its_mojo_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "mojo_conv1d"
    sources = {p.relative_to(REPO).as_posix() for p in package.rglob("*") if p.suffix in (".py", ".mojo")}
    assert any(name.endswith(".mojo") for name in sources)
    missing = sorted(sources - names)
    assert not missing, f"not in the wheel: {missing}"
    strays = sorted(n for n in names if not n.startswith(("mojo_conv1d/", "mojo_conv1d-")))
    assert not strays, f"the wheel holds more than the package: {strays}"
    assert not [n for n in names if n.endswith((".so", ".mojoc"))], "a build product was packed"


def test_wheel_metadata_pins_the_toolchain(wheel):
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.M)
    assert "max==26.7.0" in requires and "mojo==1.2.0" in requires, requires
    assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())


def test_no_file_edits_sys_path():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True)
    files = tracked.stdout.split() if tracked.returncode == 0 else [str(p.relative_to(REPO)) for p in REPO.rglob("*.py") if ".venv" not in p.parts]
    assert files
    pattern = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=")
    offenders = [f for f in files if pattern.search((REPO / f).read_text(encoding="utf-8"))]
    assert not offenders, offenders
