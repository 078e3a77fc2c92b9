"""Step outputs and their artifact names: parsing annotations, resolving templates.

Rules (ZenML's): an unannotated single output is ``output`` (an unannotated
step that never returns a value has none); the outputs of a step returning a
tuple literal under a ``Tuple[...]`` annotation are ``output_0``, ``output_1``,
...; ``Annotated[T, "name"]`` or ``Annotated[T, ArtifactConfig(name=...)]`` names
an output (one name per output, each name once per step). Unnamed outputs are
stored as ``{pipeline}::{step}::{output}``. Names are templates over ``{date}``,
``{time}`` and custom substitutions.
"""

from __future__ import annotations

import ast
import inspect
import string
import textwrap
from datetime import datetime
from typing import Annotated, Any, get_args, get_origin

import msgspec

from .config import ArtifactConfig
from .errors import ArtifactNameError, ArtifactVersionError, StepDefinitionError
from .validation import resolved_hints, unresolvable_annotations

_FORMATTER = string.Formatter()


class OutputSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One declared output of a step."""

    key: str  # output_N / output when unnamed, else the name template
    annotation: Any
    name_template: str | None = None
    config: ArtifactConfig | None = None

    @property
    def is_named(self) -> bool:
        return self.name_template is not None


def standard_substitutions(moment: datetime) -> dict[str, str]:
    """``date`` and ``time`` of a run's start, in UTC, as names use them."""
    return {"date": moment.strftime("%Y_%m_%d"), "time": moment.strftime("%H_%M_%S_%f")}


def placeholders(template: str) -> list[str]:
    try:
        return [field for _, field, _, _ in _FORMATTER.parse(template) if field is not None]
    except ValueError as exc:
        raise ArtifactNameError(
            f"Artifact name template {template!r} is malformed: {exc}"
        ) from None


def resolve_name(template: str, substitutions: dict[str, str], *, step: str, output: str) -> str:
    """The artifact name ``template`` gives under ``substitutions``."""
    fields = placeholders(template)
    if not fields:
        return template
    for field in fields:
        if field == "" or not field.isidentifier():
            raise ArtifactNameError(
                f"Artifact name template {shown(template)} of output {shown(output)} in step '{step}' "
                f"has the placeholder {shown('{' + field + '}')}; placeholders must be names "
                "like {stage}"
            )
        if field not in substitutions:
            known = ", ".join(sorted(substitutions)) or "none"
            raise ArtifactNameError(
                f"Artifact name template {shown(template)} of output {shown(output)} in step '{step}' "
                f"uses '{{{field}}}' but no substitution '{field}' is set (known: {known}); "
                f"set it with @step(substitutions={{'{field}': ...}}), @pipeline(substitutions=...) "
                f"or .with_options(substitutions=...)"
            )
    return template.format_map(substitutions)


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (names may be huge)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def check_tags(tags: Any, *, of: str) -> None:
    """ArtifactNameError unless each tag follows the rules of artifact names; ``of`` says
    whose tags they are, for the message ("output 'x' in step 's'", "artifact 'a'")."""
    from cairn_events import label_problem  # lazy: import cairn stays light

    for tag in tags:
        if (problem := label_problem(tag)) is not None:
            raise ArtifactNameError(
                f"Tag {shown(tag)} of {of} {problem}; tags follow the rules of artifact names"
            )


def check_artifact_name(name: str, *, step: str | None = None, output: str = "") -> str:
    """``name`` if it can name an artifact; ArtifactNameError naming the step, output and rule.

    Without ``step`` (an artifact saved outside a step) the error names the rule only.
    """
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        label_problem,
    )

    problem = label_problem(name)
    if problem is not None:
        where = "" if step is None else f" of output {shown(output)} in step '{step}'"
        raise ArtifactNameError(
            f"Artifact name {shown(name)}{where} {problem}. "
            f"Artifact names need a visible character, no control characters, not '.' or '..', "
            f"and at most {MAX_LABEL_BYTES} bytes; slashes, spaces and any other Unicode are fine."
        )
    return name


def check_run_name(name: str, *, pipeline: str) -> str:
    """``name`` if it can name a run of ``pipeline``; ArtifactNameError saying the rule."""
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        label_problem,
    )

    problem = label_problem(name)
    if problem is not None:
        raise ArtifactNameError(
            f"Run name {shown(name)} of pipeline '{pipeline}' {problem}. Give the run another "
            f"name with @pipeline(run_name=...) or .with_options(run_name=...): at most "
            f"{MAX_LABEL_BYTES} bytes, no control characters."
        )
    return name


def parse_outputs(
    func: Any, hints: dict[str, Any] | None = None, *, step: str | None = None
) -> list[OutputSpec]:
    """The outputs ``func`` declares through its return annotation.

    ``hints`` are its resolved annotations (resolved here when not given). A
    StepDefinitionError, naming ``step``, for an annotation Cairn (and ZenML) refuses.
    """
    step = step or func.__name__
    if hints is None:
        try:
            hints = resolved_hints(func, owner=f"step '{step}'")
        except NameError as exc:
            raise unresolvable_annotations(f"step '{step}'", exc) from None
    if (
        "return" not in hints
        and inspect.signature(func).return_annotation is inspect.Signature.empty
    ):
        if _value_returns(func) == []:
            return []  # side effects only: no output, no None artifact
        return [OutputSpec(key="output", annotation=Any)]
    annotation = hints.get("return", Any)
    if annotation is None or annotation is type(None):
        return []
    base, name, config = _split_annotated(annotation, step=step)
    if name is None and get_origin(base) is tuple and _all_tuple_literals(_value_returns(func)):
        args = get_args(base)
        if not args or args[-1] is Ellipsis:
            raise StepDefinitionError(
                f"Step '{step}' returns a tuple literal but its annotation {_shown_type(annotation)} "
                "does not say how many outputs; annotate each: Tuple[int, str]"
            )
        specs = [_spec(arg, f"output_{i}", step=step) for i, arg in enumerate(args)]
        keys = [spec.key for spec in specs]
        if twice := sorted({key for key in keys if keys.count(key) > 1}):
            raise StepDefinitionError(
                f"Step '{step}' gives more than one output the name "
                f"{' and '.join(map(shown, twice))}; give each output its own name in its "
                "Annotated[...]"
            )
        return specs
    return [OutputSpec(key=name or "output", annotation=base, name_template=name, config=config)]


def _spec(annotation: Any, default_key: str, *, step: str) -> OutputSpec:
    base, name, config = _split_annotated(annotation, step=step)
    return OutputSpec(key=name or default_key, annotation=base, name_template=name, config=config)


def _split_annotated(
    annotation: Any, *, step: str
) -> tuple[Any, str | None, ArtifactConfig | None]:
    """The type, name and ArtifactConfig of ``Annotated[T, "name"]`` or ``Annotated[T, config]``.

    As ZenML: at most one name and one ArtifactConfig; a name and a config together only
    when the config has no name of its own (the name is then the config's).
    """
    if get_origin(annotation) is not Annotated:
        return annotation, None, None
    base, *extras = get_args(annotation)
    names = [extra for extra in extras if isinstance(extra, str)]
    configs = [extra for extra in extras if isinstance(extra, ArtifactConfig)]
    others = [extra for extra in extras if not isinstance(extra, (str, ArtifactConfig))]
    if (problem := _annotated_problem(names, configs, others)) is not None:
        raise StepDefinitionError(
            f"The output annotation {_shown_type(annotation)} of step '{step}' {problem}. An "
            "output's Annotated[...] holds its type and either a name or an ArtifactConfig: "
            "Annotated[int, 'name'] or Annotated[int, ArtifactConfig(name='name', ...)]."
        )
    config = configs[0] if configs else None
    if names:
        if config is not None:
            config = msgspec.structs.replace(config, name=names[0])
        return base, names[0], config
    return base, config.name if config else None, config


def _annotated_problem(
    names: list[str], configs: list[ArtifactConfig], others: list[Any]
) -> str | None:
    if others:
        return f"holds {others[0]!r}, which is neither a name nor an ArtifactConfig"
    if len(names) > 1:
        return f"gives two names ({', '.join(map(shown, names))})"
    if len(configs) > 1:
        return "holds two ArtifactConfigs"
    if names and configs and configs[0].name is not None:
        return f"gives two names ({shown(names[0])} and ArtifactConfig(name={configs[0].name!r}))"
    return None  # an empty or otherwise bad name is refused by the name rules when resolved


def _shown_type(annotation: Any) -> str:
    text = repr(annotation).replace("typing.", "")
    return text if len(text) <= 120 else f"{text[:120]}..."


def _value_returns(func: Any) -> list[ast.Return] | None:
    """The ``return <value>`` statements of ``func`` (not ``return``/``return None``).

    None when the source cannot be read (e.g. exec'd code).
    """
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    definition = tree.body[0]
    return [
        node
        for node in _walk_own_body(definition)
        if isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
    ]


def _all_tuple_literals(returns: list[ast.Return] | None) -> bool:
    """Whether the function returns ``a, b`` (many outputs) rather than a tuple value (one).

    Without source, a ``Tuple[...]`` annotation means many outputs.
    """
    if returns is None:
        return True
    return bool(returns) and all(isinstance(node.value, ast.Tuple) for node in returns)


def _walk_own_body(definition: ast.AST) -> list[ast.AST]:
    """Nodes of a function body, not descending into nested functions or classes."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(definition))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


#: The highest version number an output may ask for. Far below what versions can be
#: numbered up to (ArtifactMaterialized.MAX_NUMBER, a Postgres bigint), so a name given
#: a high number by hand still has room for unnumbered versions after it.
MAX_REQUESTED_NUMBER = 2**31 - 1


def requested_version(
    version: object, name: str, *, step: str | None = None, output: str | None = None
) -> str | None:
    """The explicit version asked for an output named ``name``, checked; None for numbered.

    An ArtifactVersionError says what to write instead; given ``step`` and ``output``, it
    starts by naming them.

    As in ZenML, a number (``44`` or ``"44"``) claims that version number and other text
    is a label. A number has one spelling, so one version: text that reads as a number
    written otherwise (``"044"``, ``" 44"``, ``"+44"``) is refused rather than guessed
    at, as are numbers below 1 or above MAX_REQUESTED_NUMBER, and values that are
    neither a str nor an int (``True``, ``44.0``).
    """
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        is_numeric_version,
        label_problem,
    )

    if version is None:
        return None
    given = f"Artifact '{name}' was given the version"
    if step is not None:
        given = f"Output {shown(output or '')} of step '{step}': {given}"
    choices = (
        "a number such as 44, a label such as 'v3-final', or leave version out to get the next "
        "number"
    )
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise ArtifactVersionError(
            f"{given} {repr(version)[:80]}, a {type(version).__name__}, which is neither a "
            f"number nor a label. Use {choices}."
        )
    number = version if isinstance(version, int) else None
    if isinstance(version, str) and len(version) <= MAX_LABEL_BYTES:
        try:  # what ZenML reads as a number, int(version) reads as one here
            number = int(version)
        except ValueError:
            number = None
    if number is None:
        text = str(version)
        if (problem := label_problem(text)) is not None:
            raise ArtifactVersionError(
                f"{given} {shown(text)}, which {problem}. Use a label such as 'v3-final' or "
                f"'prod' (at most {MAX_LABEL_BYTES} bytes, no control characters), or leave "
                "version out to get the next number."
            )
        return text
    if not 1 <= number <= MAX_REQUESTED_NUMBER:
        seen = (  # a huge int is not printable: Python limits int-to-str conversion
            shown(version)
            if isinstance(version, str)
            else str(number)
            if abs(number).bit_length() < 1000
            else "a huge number"
        )
        raise ArtifactVersionError(
            f"{given} {seen}; version numbers you choose run from 1 to {MAX_REQUESTED_NUMBER}. "
            f"Use {choices}."
        )
    if isinstance(version, str) and not is_numeric_version(version):
        raise ArtifactVersionError(
            f"{given} {shown(version)}, which reads as the number {number} but is not written "
            f'as one. Write version={number} (or "{number}"), or use a label that does not '
            f"read as a number, such as 'v{number}'."
        )
    return str(number)
