"""docs/layout.md names every module of the project, and the entry points name modules that exist.

The oracle is the file tree: each `.py` file under roadmap/, experiments/ and analysis/ (less
`__init__.py`) must appear in backticks in the section of its package, and every name a section
gives must be a file of that package.
"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("roadmap", "experiments", "analysis")
TOP = re.compile(r"^- `(\w+)/`")  # a top-level package's bullet
SUB = re.compile(r"^  - `(\w+)/`")  # a subpackage's bullet, within the top-level one
NAME = re.compile(r"`(\w+\.py)`")


def named_modules(text: str) -> set[str]:
    """The modules a layout page names, as paths (`run_life.py` under `train/`: a train module)."""
    named: set[str] = set()
    package: str | None = None
    top: str | None = None
    for line in text.splitlines():
        if found := TOP.match(line):
            top = package = found.group(1)
        elif (found := SUB.match(line)) and top:
            package = f"{top}/{found.group(1)}"
        if package in PACKAGES or (package and package.split("/")[0] in PACKAGES):
            named.update(f"{package}/{name}" for name in NAME.findall(line))
    return named


def project_modules(root: Path) -> set[str]:
    """Every module file of the project's packages, as a path from `root`."""
    return {
        path.relative_to(root).as_posix()
        for package in PACKAGES
        for path in (root / package).rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    }


def test_layout_names_every_module_and_no_other() -> None:
    named = named_modules((REPO / "docs" / "layout.md").read_text())
    modules = project_modules(REPO)
    assert not modules - named, f"docs/layout.md does not name {sorted(modules - named)}"
    assert not named - modules, f"docs/layout.md names missing modules {sorted(named - modules)}"


def test_the_layout_reader_places_a_name_in_its_package() -> None:
    text = "- `roadmap/`: `spec.py`\n- `experiments/`: `recipe.py`\n  - `train/`: `run_life.py`\n"
    assert named_modules(text) == {
        "roadmap/spec.py",
        "experiments/recipe.py",
        "experiments/train/run_life.py",
    }
    assert "experiments/train/spec.py" not in named_modules(text)


def test_every_command_entry_point_names_a_module_that_exists() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    targets = [*project["scripts"].values(), *project["entry-points"]["roadmap.commands"].values()]
    for target in targets:
        module = target.split(":")[0]
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"pyproject.toml names {target}, and {path.name} does not exist"
