"""Reading and checking the ``parameters`` cell of the study's notebooks.

The runner injects parameters with papermill; before anything runs it checks
that every ``-p name value`` the user gave names a parameter some selected
notebook declares, and that the value fits the declared type, so a typo fails
at once with a clear message instead of an hour into the run. The notebooks are
jupytext percent files, read here as plain text (no Jupyter import).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PARAMETERS_MARKER = '# %% tags=["parameters"]'
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Parameter:
    name: str
    type_name: str  # int | float | str | bool
    default: object
    comment: str  # the explanation after '#'
    line: int  # line number in the notebook file


def read_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """The typed literals of a notebook's parameters cell, by name.

    Raises ValueError naming file and line when the cell is missing or holds
    anything but ``name: type = literal  # comment`` lines.
    """
    notebook = Path(notebook)
    lines = notebook.read_text(encoding="utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == PARAMETERS_MARKER)
    except StopIteration:
        raise ValueError(f"{notebook}: no parameters cell (a line '{PARAMETERS_MARKER}')") from None
    params: dict[str, Parameter] = {}
    for index in range(start + 1, len(lines)):
        text = lines[index]
        if text.startswith("# %%"):
            break
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        line_no = index + 1
        code, _, comment = text.partition("  #")
        try:
            node = ast.parse(code.strip()).body[0]
        except (SyntaxError, IndexError):
            raise ValueError(f"{notebook}:{line_no}: cannot parse parameter line {text!r}") from None
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(node.annotation, ast.Name) and node.annotation.id in TYPES
                and node.value is not None):
            raise ValueError(f"{notebook}:{line_no}: parameter lines must read 'name: int|float|str|bool = literal  # comment'")
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{notebook}:{line_no}: the value of {node.target.id!r} must be a literal") from None
        if not comment.strip():
            raise ValueError(f"{notebook}:{line_no}: parameter {node.target.id!r} needs a comment saying what it is")
        if any(char in comment for char in "=\"'"):
            # papermill's parameter parser gives up on such lines and then treats the name as unknown
            raise ValueError(f"{notebook}:{line_no}: the comment of {node.target.id!r} must not contain '=' or quotes")
        params[node.target.id] = Parameter(node.target.id, node.annotation.id, default, comment.strip(), line_no)
    return params


def coerce(value: str, type_name: str, name: str) -> object:
    """Turn a command-line string into the declared type, or raise naming the parameter."""
    if type_name == "bool":
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"parameter {name!r} is a bool; got {value!r} (use true or false)")
    try:
        return TYPES[type_name](value)
    except ValueError:
        raise ValueError(f"parameter {name!r} is {'an' if type_name == 'int' else 'a'} {type_name}; got {value!r}") from None


def check_overrides(notebooks: list[Path], overrides: list[tuple[str, str]]) -> dict[str, object]:
    """Validate ``-p name value`` pairs against the notebooks' declared parameters.

    Returns the typed values. A name no selected notebook declares, or a value
    that does not fit its type, raises ValueError naming the parameter.
    """
    declared: dict[str, Parameter] = {}
    for notebook in notebooks:
        for name, param in read_parameters(notebook).items():
            declared.setdefault(name, param)
    typed: dict[str, object] = {}
    for name, value in overrides:
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise ValueError(f"unknown parameter {name!r}: no selected notebook declares it (known: {known})")
        typed[name] = coerce(value, declared[name].type_name, name)
    return typed
