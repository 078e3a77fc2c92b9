"""The digest of a step's code: its function and the user code it calls.

A step's code is its function's source and the source of every module-level function
and class of the user's own files (not the standard library, installed packages or
Cairn) that it refers to, transitively: through its globals, the attributes of the user
modules it names, its closure and default values. Each is digested from its syntax tree
without decorators, so a comment, blank lines, reformatting or ``@step(...)`` options do
not change it; a change of what the code does does.

Digests of each function and class are kept for the process (the syntax tree is parsed
once); the walk over what a step refers to is redone on each call, so a helper replaced
in its module (a reload) is seen.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import hashlib
import inspect
import marshal
import sys
import sysconfig
import textwrap
import types
import weakref
from functools import cache
from pathlib import Path
from typing import Any

#: How many objects one step's code may pull in; beyond it the walk stops (and says so).
MAX_OBJECTS = 2000

_own: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_names_of: dict[types.CodeType, tuple[str, ...]] = {}


#: The label of the step's own function among its code digests.
STEP_FUNCTION = "(step function)"


#: How the label of a value a step's code reads ends (see :func:`code_digests`).
VALUE = " (value)"


def code_digests(func: Any) -> dict[str, str]:
    """``{"module:qualname": digest}`` of the user code ``func`` refers to, and ``func``'s
    own under :data:`STEP_FUNCTION`; and of the plain values that code reads (module-level
    constants of the user's files, closure variables), labelled ``... (value)``."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    pending: list[Any] = [func]
    while pending and len(found) < MAX_OBJECTS:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found[STEP_FUNCTION if obj is func else _label(obj)] = _own_digest(obj)
        code, values = _references(obj)
        found.update(values)
        pending.extend(ref for ref in code if id(ref) not in seen)
    return found


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _own_digest(obj: Any) -> str:
    try:
        return _own[obj]
    except (KeyError, TypeError):
        pass
    digest = hashlib.blake2b(_normalized_source(obj), digest_size=16).hexdigest()
    with contextlib.suppress(TypeError):  # not weakly referenceable: computed each time
        _own[obj] = digest
    return digest


def _normalized_source(obj: Any) -> bytes:
    """The object's syntax tree without decorators; its bytecode if it has no source."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = getattr(obj, "__code__", None)
        return marshal.dumps(code) if code is not None else repr(obj).encode()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []  # the object's own decorators and name: the first
            node.name = ""  # definition in its source (its label says its name)
            break
    return ast.dump(tree, annotate_fields=False, include_attributes=False).encode()


def _references(obj: Any) -> tuple[list[Any], dict[str, str]]:
    """The user functions and classes ``obj`` refers to, and the digests of the plain values
    it reads, by label."""
    code: list[Any] = []
    values: dict[str, str] = {}
    if isinstance(obj, type):
        for member in vars(obj).values():
            func = getattr(member, "__func__", member)  # staticmethod / classmethod
            if isinstance(func, types.FunctionType):
                more, read = _references(func)
                code.extend(more)
                values.update(read)
        return code, values
    func = getattr(obj, "__wrapped__", obj)
    function_code = getattr(func, "__code__", None)
    if function_code is None:
        return code, values
    namespace = getattr(func, "__globals__", {})
    module_name = namespace.get("__name__", "?")
    candidates: list[tuple[str, Any]] = []
    names = _names(function_code)
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType) and is_user_module(value):
            candidates.extend(
                (f"{value.__name__}:{attr}", getattr(value, attr))
                for attr in names
                if hasattr(value, attr)
            )
        else:
            candidates.append((f"{module_name}:{name}", value))
    free = function_code.co_freevars
    for name, cell in zip(free, getattr(func, "__closure__", None) or (), strict=False):
        try:
            candidates.append((f"{_label(func)}.<{name}>", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    candidates.extend(("", default) for default in getattr(func, "__defaults__", None) or ())
    for label, candidate in candidates:
        target = getattr(candidate, "func", candidate)  # a cairn Step: its function
        if _is_user_code(target):
            code.append(target)
        elif label and (shown := _plain(candidate)) is not None:
            values[label + VALUE] = hashlib.blake2b(shown.encode(), digest_size=16).hexdigest()
    return code, values


_PLAIN = (type(None), bool, int, float, complex, str, bytes, enum.Enum)


def _plain(value: Any, depth: int = 0) -> str | None:
    """``value``'s repr if it is immutable plain data (numbers, text, enums, and tuples or
    frozensets of them), whose change makes the step compute something else; None for
    anything else. Lists, dicts and sets are left out: a step may append to one (a log,
    a registry) on every call, which would make its key change on every run."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if depth >= 3 or not isinstance(value, (tuple, frozenset)) or len(value) > 1000:
        return None
    parts = [_plain(item, depth + 1) for item in value]
    if any(part is None for part in parts):
        return None
    shown = [part for part in parts if part is not None]
    if isinstance(value, frozenset):
        shown.sort()
    return f"{type(value).__name__}({', '.join(shown)})"


def _names(code: types.CodeType) -> tuple[str, ...]:
    """Every name ``code`` and the code nested in it look up (globals and attributes)."""
    names = _names_of.get(code)
    if names is None:
        collected: list[str] = []
        stack = [code]
        while stack:
            current = stack.pop()
            collected.extend(current.co_names)
            collected.extend(current.co_freevars)
            stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names = _names_of[code] = tuple(dict.fromkeys(collected))
    return names


def _is_user_code(obj: Any) -> bool:
    if not isinstance(obj, (types.FunctionType, type)):
        return False
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return module is not None and is_user_module(module)


def is_user_module(module: types.ModuleType) -> bool:
    """Whether ``module`` is the user's own code: not the standard library, an installed
    package or Cairn itself (``__main__`` and modules without a file are the user's)."""
    name = module.__name__
    if name.split(".")[0] in ("cairn", "cairn_events", "cairn_projections", "cairn_services"):
        return False
    path = getattr(module, "__file__", None)
    if path is None:
        return name == "__main__" or name not in sys.builtin_module_names
    resolved = Path(path).resolve()
    return not any(resolved.is_relative_to(root) for root in _library_roots())


@cache
def _library_roots() -> tuple[Path, ...]:
    """Where the standard library and installed packages live."""
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({Path(paths[key]).resolve() for key in keys if key in paths})
