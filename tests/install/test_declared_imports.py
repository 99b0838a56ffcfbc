"""Every third-party import in src/ is declared in pyproject.toml, pinned in a requirements file, and the extras
the README tells people to install are the ones pyproject defines."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "lmaudit"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normalize(re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0))


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module name -> the files that import it (absolute imports only, stdlib and lmaudit left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "lmaudit" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def declared() -> dict[str, str]:
    """Distribution -> where pyproject declares it ('dependencies' or 'extra <name>'; the first such place)."""
    project = PYPROJECT["project"]
    places = {requirement_name(spec): "dependencies" for spec in project["dependencies"]}
    for extra, specs in project.get("optional-dependencies", {}).items():
        for spec in specs:
            if requirement_name(spec) != "lmaudit":
                places.setdefault(requirement_name(spec), f"extra {extra}")
    return places


@functools.cache
def installed_providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> list[str]:
    """The installed distributions that provide a top-level module (the module's own name if none is installed)."""
    providers = installed_providers().get(module)
    return [normalize(d) for d in providers] if providers else [normalize(module)]


def test_the_import_scan_sees_the_known_imports():
    imports = third_party_imports()
    assert {"numpy", "scipy", "threadpoolctl", "typer", "torch", "transformers"} <= set(imports)
    assert "scaling/fit.py" in " ".join(imports["threadpoolctl"])
    assert not {"os", "json", "lmaudit", "__future__"} & set(imports)


def test_every_third_party_import_is_declared_in_pyproject():
    places = declared()
    missing = {module: sorted(files) for module, files in third_party_imports().items()
               if not any(dist in places for dist in distributions_of(module))}
    assert not missing, f"imported in src/ but not declared in pyproject.toml: {missing}"


def test_the_core_dependencies_cover_scaling_fit_and_the_cli():
    core = {requirement_name(spec) for spec in PYPROJECT["project"]["dependencies"]}
    # `lmaudit scaling fit` and the CLI itself must work from a plain `pip install lmaudit`
    assert {"numpy", "scipy", "threadpoolctl", "typer", "rich", "tqdm"} <= core
    assert "torch" not in core and "matplotlib" not in core


def test_every_declared_dependency_is_pinned():
    pins = {}
    for path in sorted(REPO.glob("requirements*.txt")):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                pins[requirement_name(line)] = line
    unpinned = sorted(d for d in declared() if d not in pins)
    assert not unpinned, f"declared in pyproject.toml but pinned in no requirements file: {unpinned}"
    loose = sorted(line for line in pins.values() if "==" not in line)
    assert not loose, f"requirements lines without an exact pin: {loose}"


def test_the_readme_names_the_extras_pyproject_defines():
    readme = (REPO / "README.md").read_text()
    named = {extra.strip() for group in re.findall(r"lmaudit\[([a-z0-9_,\- ]+)\]", readme) for extra in group.split(",")}
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    assert named, "the README's install section names no extras"
    assert named <= extras, f"the README names extras pyproject does not define: {sorted(named - extras)}"
    user_facing = {e for e in extras if e not in {"test"} and not e.startswith("bench-")}
    assert user_facing <= named, f"extras the README never mentions: {sorted(user_facing - named)}"


def test_the_shipped_data_is_package_data():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["lmaudit"]
    shipped = [p for p in (SRC / "tasks" / "files").rglob("*") if p.is_file()]
    assert shipped
    unpackaged = [str(p.relative_to(SRC)) for p in shipped
                  if not any(p.relative_to(SRC).match(pattern) for pattern in patterns)]
    assert not unpackaged, f"files under tasks/files that the wheel would leave out: {unpackaged}"
