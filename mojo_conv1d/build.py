"""The one place that runs the Mojo compiler, and the cache of what it built.

Each product (the kernel package as a `.mojoc`, an extension module as a
shared library) is built once and kept under a name that hashes its sources,
the toolchain's versions and the build command, in the user's cache directory:
`$XDG_CACHE_HOME/mojo_conv1d`, or `~/.cache/mojo_conv1d`. A changed kernel is
rebuilt, an unchanged one is reused across processes, and an installed copy of
the package never writes beside its own sources. The puzzle driver uses it too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
KERNELS = PACKAGE_DIR / "kernels"  # the Mojo package: every kernel and MAX op

_lock = threading.Lock()
# Loading a Mojo extension sets these in the process's C environment (Mojo's
# Python interop), where os.environ does not see them; a child process would
# inherit PYTHONEXECUTABLE and start outside this venv.
_MOJO_INTEROP_ENV = ("PYTHONEXECUTABLE", "PYTHONPATH", "MOJO_PYTHON_LIBRARY")


def cache_dir() -> Path:
    """Where built products live: $MOJO_CONV1D_CACHE if set, else
    mojo_conv1d under $XDG_CACHE_HOME or ~/.cache. Read on every call, so
    that a test or a user can point it elsewhere."""
    if override := os.environ.get("MOJO_CONV1D_CACHE"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mojo_conv1d"


@functools.cache
def toolchain() -> str:
    """The installed versions that decide what a build holds. (A conda
    environment may install Mojo without Python metadata named "mojo".)"""
    found = []
    for dist in ("mojo", "mojo-compiler", "max"):
        try:
            found.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ",".join(found)


def run_mojo(args: list[str]) -> subprocess.CompletedProcess:
    """The Mojo compiler: through the wheel's launcher where there is one (it
    points the compiler at its libraries), else `mojo` on the PATH (conda)."""
    try:
        from mojo.run import subprocess_run_mojo
    except ImportError:
        return subprocess.run(["mojo", *args], capture_output=True, text=True)
    return subprocess_run_mojo(args, capture_output=True, text=True)


def _digest(sources: Iterable[Path], command: list[str]) -> str:
    digest = hashlib.sha256(toolchain().encode())
    digest.update("\0".join(command).encode())
    for source in sources:
        digest.update(b"\0" + source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _mojo_files(folder: Path) -> list[Path]:
    return sorted(folder.resolve().glob("*.mojo"))


def _build(name: str, sources: list[Path], command: list[str]) -> Path:
    """The product `name` of `mojo <command> -o <product>`, built unless the
    cache has one from the same sources, toolchain and command. The command
    names sources by absolute path, which is not part of the key: the same
    sources installed elsewhere reuse the product."""
    key = _digest(sources, [part for part in command if not part.startswith("/")])
    product = cache_dir() / key / name
    if product.exists():
        return product
    with _lock:  # one build per product in a process; other processes race harmlessly
        if product.exists():
            return product
        print(f"mojo_conv1d: building {name} (once; kept in {product.parent})", file=sys.stderr, flush=True)
        # The compiler names a package after its file, so the staged file has the final name.
        staging = product.parent / f"staging-{os.getpid()}-{threading.get_ident()}"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            result = run_mojo([*command, "-o", str(staging / name)])
            if result.returncode != 0:
                raise RuntimeError(f"mojo_conv1d: building {name} failed:\n{result.stderr or result.stdout}")
            os.replace(staging / name, product)  # atomic: another process sees the whole file or none
        finally:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
            if not any(product.parent.iterdir()):
                product.parent.rmdir()
    return product


def kernel_package(source: Path = KERNELS) -> Path:
    """A Mojo package folder (by default the op's kernels) precompiled to a
    `.mojoc` that MAX loads without compiling it again."""
    source = source.resolve()
    return _build(f"{source.name}.mojoc", _mojo_files(source), ["precompile", str(source)])


def extension_module(source: Path, include: Path = KERNELS, target_accelerator: str | None = None) -> Path:
    """A Mojo Python extension module (a file with `PyInit_<name>`) built as a
    shared library, with the package `include` importable from it; its GPU
    kernels for `target_accelerator` (sm_90, gfx942, ...) when given."""
    source = source.resolve()
    sources = [source, *_mojo_files(include)]
    command = ["build", str(source), "--emit", "shared-lib", "-I", str(include.resolve().parent)]
    if target_accelerator is not None:
        command += ["--target-accelerator", target_accelerator]
    return _build(f"{source.stem}.so", sources, command)


def import_extension(source: Path, target_accelerator: str | None = None) -> ModuleType:
    """extension_module(source, ...) imported, leaving the C environment's
    _MOJO_INTEROP_ENV as they were. Each call imports the library anew: the
    callers keep the module."""
    library = extension_module(source, target_accelerator=target_accelerator)
    spec = importlib.util.spec_from_file_location(source.stem, library)
    module = importlib.util.module_from_spec(spec)
    saved = {name: os.environ.get(name) for name in _MOJO_INTEROP_ENV}
    try:
        spec.loader.exec_module(module)
    finally:
        for name, value in saved.items():
            if value is None:
                os.unsetenv(name)
            else:
                os.putenv(name, value)
    return module


@contextlib.contextmanager
def compiled_graphs(package: Path, name: str) -> Iterator[Path]:
    """Keeps the MAX graphs compiled inside this block on disk, beside the
    package build they call, and gives them back to a later process instead
    of compiling them again. `name` must tell apart whatever else the graphs
    depend on (device, sizes); a changed package is a new build, so its
    graphs are new too. A graph the kept set lacks is compiled as usual."""
    from max.experimental import support

    directory = package.parent / "graphs" / name
    if (directory / "manifest.json").is_file():
        with support.set_precompiled_mefs(directory):
            yield directory
        return
    # Exported into a folder of this process's own, which becomes the kept
    # set only when whole, so a reader never sees half of one.
    staging = directory.with_name(f"{name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        with support.set_export_mefs(staging):
            yield directory
        if (staging / "manifest.json").is_file() and not directory.exists():
            os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
