"""Keep pixi.toml valid and in step with pyproject.toml.

pixi and its conda channels cannot be reached from CI, so these tests check
what can be checked offline: the manifest against pixi's published JSON schema,
the facts the two manifests must agree on (tasks, MAX/Mojo pins, torch), and
which environments each platform gets.
"""

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

# Found from this file, not the working directory: tests/ sits in the repo root.
REPO = Path(__file__).resolve().parent.parent
PIXI_TOML = REPO / "pixi.toml"
PYPROJECT_TOML = REPO / "pyproject.toml"
# pixi's published manifest schema, vendored with its licence (tests/data/LICENSE-pixi.txt).
SCHEMA = REPO / "tests" / "data" / "manifest-schema-v0.77.0.json"

# Every version a torch spec could plausibly name; a spec "admits" the ones
# of these it contains. Coarse, but enough to compare two ranges.
CANDIDATE_VERSIONS = [
    Version(f"{major}.{minor}.{patch}")
    for major in (1, 2, 3)
    for minor in range(41)
    for patch in range(4)
]


def load(path):
    with path.open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def pixi():
    return load(PIXI_TOML)


@pytest.fixture(scope="module")
def pyproject():
    return load(PYPROJECT_TOML)


def project_requirements(pyproject):
    reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    return {r.name: r for r in reqs}


# (a) -----------------------------------------------------------------------


def test_pixi_toml_matches_schema(pixi):
    # Fail, not skip: a missing schema must not pass silently.
    if not SCHEMA.is_file():
        pytest.fail(f"pixi manifest schema not found at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text())
    # The validator class for the draft the schema declares in "$schema".
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(pixi), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not messages, "pixi.toml does not match the schema:\n" + "\n".join(messages)


# (b) -----------------------------------------------------------------------


def task_command(task):
    """The command of a pixi or poe task: a string, or a table's cmd/shell."""
    if isinstance(task, str):
        return task
    if isinstance(task, dict):
        cmd = task.get("cmd", task.get("shell"))
        # pixi also allows cmd as a list of words.
        return " ".join(cmd) if isinstance(cmd, list) else cmd
    return None


def test_pixi_tasks_equal_poe_tasks(pixi, pyproject):
    pixi_tasks = {name: task_command(t) for name, t in pixi.get("tasks", {}).items()}
    poe_tasks = {
        name: task_command(t)
        for name, t in pyproject["tool"]["poe"]["tasks"].items()
    }
    assert poe_tasks, "pyproject.toml has no [tool.poe.tasks]"
    # Spelled out so a failure names the task at fault.
    differences = [
        f"{name}: pixi runs {pixi_tasks.get(name)!r}, poe runs {poe_tasks.get(name)!r}"
        for name in sorted(pixi_tasks.keys() | poe_tasks.keys())
        if pixi_tasks.get(name) != poe_tasks.get(name)
    ]
    assert not differences, "pixi and poe tasks differ:\n" + "\n".join(differences)


# (c) -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max", "mojo"])
def test_max_and_mojo_pinned_the_same(pixi, pyproject, name):
    req = project_requirements(pyproject).get(name)
    assert req is not None, f"pyproject.toml does not depend on {name}"
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", (
        f"pyproject.toml: {name} must be an exact pin (==), got {req}"
    )

    pixi_spec = pixi.get("dependencies", {}).get(name)
    assert pixi_spec is not None, f"pixi.toml [dependencies] lacks {name}"
    if isinstance(pixi_spec, dict):
        pixi_spec = pixi_spec.get("version", "")
    # Exactly "==X": on conda a bare "X" would mean X.*.
    assert pixi_spec.replace(" ", "") == str(req.specifier), (
        f"{name}: pixi.toml has {pixi_spec!r}, pyproject.toml has {str(req.specifier)!r}"
    )


# (d) -----------------------------------------------------------------------


def environment_features(pixi, env_name):
    """The features an environment is made of, the default feature included."""
    env = pixi.get("environments", {}).get(env_name)
    assert env is not None, f"pixi.toml has no environment {env_name!r}"
    if isinstance(env, list):
        env = {"features": env}
    features = [pixi.get("feature", {}).get(f, {}) for f in env.get("features", [])]
    if not env.get("no-default-feature", False):
        features.insert(0, pixi)  # the top-level tables are the default feature
    return features


def torch_requirement(pixi, env_name):
    specs = [
        f["pypi-dependencies"]["torch"]
        for f in environment_features(pixi, env_name)
        if "torch" in f.get("pypi-dependencies", {})
    ]
    assert len(specs) == 1, f"environment {env_name!r}: expected one torch, got {specs}"
    spec = specs[0]
    return spec if isinstance(spec, dict) else {"version": spec}


@pytest.mark.parametrize(
    "env_name, build",
    [("default", "/whl/cu"), ("amd", "/whl/rocm"), ("cpu", None)],
)
def test_environment_torch_within_pyproject_range(pixi, pyproject, env_name, build):
    allowed = project_requirements(pyproject)["torch"].specifier
    torch = torch_requirement(pixi, env_name)

    # default is NVIDIA (a CUDA wheel index), amd is ROCm, cpu is PyPI's
    # torch (no index of its own), as uv installs it.
    if build is None:
        assert "index" not in torch, f"environment {env_name!r}: torch from {torch['index']!r}, not PyPI"
    else:
        assert build in torch.get("index", ""), (
            f"environment {env_name!r}: torch index {torch.get('index')!r} is not a {build} index"
        )

    version = torch.get("version", "*").strip()
    spec = SpecifierSet("" if version == "*" else version)
    admitted = [v for v in CANDIDATE_VERSIONS if v in spec]
    assert any(v in allowed for v in admitted), (
        f"environment {env_name!r}: torch {version!r} admits nothing in pyproject's {allowed}"
    )
    # And nothing outside it, so pixi cannot pick a torch uv would not.
    outside = [str(v) for v in admitted if v not in allowed]
    assert not outside, (
        f"environment {env_name!r}: torch {version!r} admits {outside[:5]}..., "
        f"outside pyproject's {allowed}"
    )


# (e) -----------------------------------------------------------------------

# The platforms a learner may have, and the environments each one gets:
# NVIDIA where torch's cu130 index has wheels (x86_64 and aarch64 Linux), AMD
# where the ROCm index has them (x86_64 Linux), and the CPU one everywhere,
# macOS on Apple silicon included (MAX's CustomOpLibrary takes no mps tensors).
PLATFORM_ENVIRONMENTS = {
    "linux-64": {"default", "amd", "cpu"},
    "linux-aarch64": {"default", "cpu"},
    "osx-arm64": {"cpu"},
}


def environment_platforms(pixi, env_name):
    """The platforms pixi solves an environment for: the workspace's, cut
    down by each of its features that lists its own."""
    platforms = set(pixi["workspace"]["platforms"])
    for feature in environment_features(pixi, env_name):
        if feature is not pixi and "platforms" in feature:
            platforms &= set(feature["platforms"])
    return platforms


def test_platforms_and_their_environments(pixi):
    assert sorted(pixi["workspace"]["platforms"]) == sorted(PLATFORM_ENVIRONMENTS)
    assert set(pixi["environments"]) == set().union(*PLATFORM_ENVIRONMENTS.values())
    given = {
        platform: {env for env in pixi["environments"] if platform in environment_platforms(pixi, env)}
        for platform in PLATFORM_ENVIRONMENTS
    }
    assert given == PLATFORM_ENVIRONMENTS
