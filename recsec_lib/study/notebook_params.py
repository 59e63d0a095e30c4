"""Reading and checking the ``parameters`` cell of the study's notebooks.

The runner injects parameters with papermill; before anything runs it checks
that every ``-p name value`` the user gave names a parameter some selected
notebook declares, and that the value fits the declared type, so a typo fails
at once with a clear message instead of an hour into the run. The notebooks are
jupytext percent files, read here as plain text (no Jupyter import).

A parameter is ``name: type = literal  # comment`` with type int, float, str or
bool, or one of them that may be None (``Optional[int]``, or ``int | None``),
whose ``None`` means "the profile's value" (``-p name none`` gives it back).
The notebooks spell it ``Optional[int]``: papermill's own parameter parser
(2.7) does not read ``int | None`` and would warn "Passed unknown parameter"
for every value set from the command line.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recsec_lib.common.settings import did_you_mean

PARAMETERS_MARKER = '# %% tags=["parameters"]'
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Parameter:
    name: str
    type_name: str  # int | float | str | bool
    default: object
    comment: str  # the explanation after '#'
    line: int  # line number in the notebook file
    optional: bool = False  # declared Optional[X] (or X | None): None means the profile's value


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
        declared = _declared_type(node.annotation) if isinstance(node, ast.AnnAssign) else None
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and declared
                and node.value is not None):
            raise ValueError(f"{notebook}:{line_no}: parameter lines must read 'name: int|float|str|bool = literal  "
                             f"# comment' (or Optional[int] ... = None  # comment)")
        type_name, optional = declared
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{notebook}:{line_no}: the value of {node.target.id!r} must be a literal") from None
        if not _fits(default, type_name, optional):
            kind = f"Optional[{type_name}]" if optional else type_name
            advice = "" if optional or default is not None else f" (declare it Optional[{type_name}])"
            raise ValueError(f"{notebook}:{line_no}: the value of {node.target.id!r} does not fit its type {kind}: "
                             f"{default!r}{advice}")
        if not comment.strip():
            raise ValueError(f"{notebook}:{line_no}: parameter {node.target.id!r} needs a comment saying what it is")
        if any(char in comment for char in "=\"'"):
            # papermill's parameter parser gives up on such lines and then treats the name as unknown
            raise ValueError(f"{notebook}:{line_no}: the comment of {node.target.id!r} must not contain '=' or quotes")
        params[node.target.id] = Parameter(node.target.id, type_name, default, comment.strip(), line_no, optional)
    return params


def _declared_type(annotation: ast.expr) -> tuple[str, bool] | None:
    """("int", False) for ``int``; ("int", True) for ``Optional[int]`` or ``int | None``; None for anything else."""
    if isinstance(annotation, ast.Name) and annotation.id in TYPES:
        return annotation.id, False
    if (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
            and annotation.value.id == "Optional" and isinstance(annotation.slice, ast.Name)
            and annotation.slice.id in TYPES):
        return annotation.slice.id, True
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        sides = (annotation.left, annotation.right)
        names = [side.id for side in sides if isinstance(side, ast.Name) and side.id in TYPES]
        nones = [side for side in sides if isinstance(side, ast.Constant) and side.value is None]
        if len(names) == 1 and len(nones) == 1:
            return names[0], True
    return None


def _fits(value: object, type_name: str, optional: bool) -> bool:
    if value is None:
        return optional
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[type_name])


def coerce(value: str, type_name: str, name: str, optional: bool = False) -> object:
    """Turn a command-line string into the declared type, or raise naming the parameter.

    For an optional parameter the text ``none`` is None: the profile's value.
    """
    if optional and value.strip().lower() == "none":
        return None
    if type_name == "bool":
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"parameter {name!r} is a bool; got {value!r} (use true or false"
                         f"{', or none for the profile value' if optional else ''})")
    try:
        return TYPES[type_name](value)
    except ValueError:
        article = "an" if type_name == "int" else "a"
        none = " (or none for the profile value)" if optional else ""
        raise ValueError(f"parameter {name!r} is {article} {type_name}{none}; got {value!r}") from None


def check_overrides(notebooks: list[Path], overrides: list[tuple[str, str]],
                    reserved: Mapping[str, str] | None = None) -> dict[str, object]:
    """Validate ``-p name value`` pairs against the notebooks' declared parameters.

    Returns the typed values. A name no selected notebook declares, or a value
    that does not fit its type, raises ValueError naming the parameter; an
    unknown name gets the closest settable name ("did you mean") and the list of
    settable names. ``reserved`` are parameters ``-p`` cannot set (the runner's
    own settings, name -> the flag that sets them instead): they are not listed,
    and a name close to one is pointed at its flag.
    """
    reserved = reserved or {}
    declared: dict[str, Parameter] = {}
    for notebook in notebooks:
        for name, param in read_parameters(notebook).items():
            declared.setdefault(name, param)
    typed: dict[str, object] = {}
    for name, value in overrides:
        if name not in declared:
            raise ValueError(unknown_parameter_message(name, [n for n in declared if n not in reserved], reserved))
        param = declared[name]
        typed[name] = coerce(value, param.type_name, name, param.optional)
    return typed


def unknown_parameter_message(name: str, settable: list[str], reserved: Mapping[str, str]) -> str:
    """"unknown parameter 'epoch'; did you mean 'epochs'? Parameters -p can set in the selected stages: ..." """
    hint = did_you_mean(name, settable)
    if not hint:
        close = difflib.get_close_matches(name, list(reserved), n=1)
        if close:
            hint = f"; did you mean {close[0]!r}? (the runner's own setting: use {reserved[close[0]]})"
    names = ", ".join(sorted(settable)) or "none"
    return f"unknown parameter {name!r}{hint or '.'} Parameters -p can set in the selected stages: {names}"
