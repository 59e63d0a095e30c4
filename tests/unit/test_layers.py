"""The package layout is the study's shape: each package imports only lower layers.

docs/ARCHITECTURE.md states the rule: common → data, models → recommend →
attack → defenses, gro, seat, watermark → arena → study → cli. A module may import its own package and any
package of a lower layer, never a higher one nor a sibling of the same layer
(gro, seat and watermark know nothing of each other; nor do data and models).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "recsec_lib"
LAYERS = {"common": 0, "data": 1, "models": 1, "recommend": 2, "attack": 3, "defenses": 4, "gro": 4, "seat": 4, "watermark": 4,
          "arena": 5, "study": 6, "cli": 7, "__main__": 8}


def package_of(module: str) -> str:
    """``recsec_lib.attack.blackbox`` -> ``attack``; ``recsec_lib`` itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str) -> list[str]:
    """Every ``recsec_lib`` module that ``source`` (the text of ``module``) imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "recsec_lib" or (node.level and not node.module):  # from recsec_lib import attack
                found += [f"{name}.{alias.name}" for alias in node.names]
            else:
                found.append(name)
    return [name for name in found if name == "recsec_lib" or name.startswith("recsec_lib.")]


def layer_violations(importer: str, imported: list[str]) -> list[str]:
    """The imports of ``importer`` that reach a higher layer or a sibling package of its own layer."""
    own = package_of(importer)
    problems = []
    for name in imported:
        other = package_of(name)
        if other in ("", own) or other not in LAYERS:
            continue
        if own == "":  # recsec_lib/__init__.py runs on every import: only layer-0 helpers
            if LAYERS[other] > 0:
                problems.append(f"recsec_lib/__init__.py imports {name}; it may import only layer-0 packages")
        elif own not in LAYERS:
            problems.append(f"{importer}: its package {own!r} has no layer in LAYERS")
        elif LAYERS[other] >= LAYERS[own]:
            problems.append(f"{importer} imports {name} ({other}, layer {LAYERS[other]}; {own} is layer {LAYERS[own]})")
    return problems


def library_modules() -> dict[str, str]:
    modules = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path.read_text(encoding="utf-8")
    return modules


def test_no_module_imports_a_higher_layer():
    problems = []
    for module, source in library_modules().items():
        problems += layer_violations(module, imported_modules(source, module))
    assert not problems, "\n".join(problems)


def test_every_module_lives_in_a_package_with_a_layer():
    loose = [m for m in library_modules() if m.count(".") == 1 and package_of(m) not in LAYERS
             and not (LIBRARY / package_of(m)).is_dir()]
    unknown = sorted({package_of(m) for m in library_modules() if m.count(".") >= 1} - set(LAYERS))
    assert not loose, f"flat modules outside the packages: {loose}"
    assert not unknown, f"packages without a layer (add them to LAYERS and docs/ARCHITECTURE.md): {unknown}"


def test_every_package_says_what_it_holds_and_may_import():
    for package in (p for p in LIBRARY.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{package.name}/__init__.py has no docstring"
        if package.name in LAYERS:
            assert "Layer" in doc or "layer" in doc, f"{package.name}/__init__.py does not state its layer"


@pytest.mark.parametrize("importer, imported, bad", [
    ("recsec_lib.recommend.metrics", ["recsec_lib.models.base", "recsec_lib.common.files"], False),
    ("recsec_lib.recommend.metrics", ["recsec_lib.attack.blackbox"], True),  # a higher layer
    ("recsec_lib.gro.loss", ["recsec_lib.seat.monitor"], True),  # a sibling of the same layer
    ("recsec_lib.study.runner", ["recsec_lib.study.runs", "recsec_lib.gro"], False),
    ("recsec_lib.data.cache", ["recsec_lib.study"], True),
])
def test_the_checker_itself(importer, imported, bad):
    assert bool(layer_violations(importer, imported)) is bad


def test_relative_and_package_imports_are_resolved():
    source = "from . import loss\nfrom recsec_lib import study\nimport recsec_lib.seat.monitor\n"
    assert imported_modules(source, "recsec_lib.gro.training") == [
        "recsec_lib.gro.loss", "recsec_lib.study", "recsec_lib.seat.monitor"]
