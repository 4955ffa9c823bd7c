"""What the wheel must carry: every package, every imported distribution, the resources."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "faceapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "faceapp"}


def test_every_package_is_listed_for_the_wheel():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "faceapp").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    data = {"faceapp.engine.centres", "faceapp.resources", "faceapp.resources.icons"}
    assert listed == on_disk | data, sorted(listed ^ (on_disk | data))


def test_resources_map_into_the_package():
    tool = PYPROJECT["tool"]["setuptools"]
    assert tool["package-dir"] == {"faceapp.resources": "resources"}
    assert (ROOT / "resources" / "style.qss").is_file()
    assert any((ROOT / "resources" / "icons").glob("*.svg"))


def test_every_imported_distribution_is_declared():
    project = PYPROJECT["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    providers = packages_distributions()
    # a module of an optional extra that is not installed here goes by its own name
    missing = {
        module: providers.get(module, [module])
        for module in _third_party_imports()
        if not {_name(d) for d in providers.get(module, [module])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
