"""Which materializer stores each output of a step.

``@step(output_materializers=...)`` takes what ZenML takes: a materializer
class or a "module.Class" source string (or a list of them) for every output,
or a dict from output name to those. It is resolved to classes when the step
is defined; a source that does not import, or a dict key that is not an
output of the step, is refused then (StepDefinitionError).

At save time an output with materializers given uses the one for the value's
type, chosen as ZenML's select_materializer does: walking the value's MRO, an
exact entry of ASSOCIATED_TYPES wins, else the first materializer whose
ASSOCIATED_TYPES cover the type. If none does, the step fails naming the
step, output, type and materializer. Other outputs are looked up by the type
of the value (cairn.materializers.registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cairn.errors import StepDefinitionError
from cairn.materializers.base import BaseMaterializer, associated_label, type_label
from cairn.materializers.errors import MaterializerError, MaterializerTypeError
from cairn.materializers.registry import import_qualified, materializer_for

if TYPE_CHECKING:
    from cairn.naming import OutputSpec
    from cairn.steps import Step

__all__ = ["OutputMaterializers", "materializers_for_outputs", "select_materializer"]

Materializers = tuple[type[BaseMaterializer], ...]


class OutputMaterializers:
    """A step's output_materializers, resolved to classes.

    ``for_all`` applies to every output (a class, source or list given without
    output names); ``by_output`` maps output names to theirs.
    """

    __slots__ = ("by_output", "for_all")

    def __init__(self, for_all: Materializers, by_output: dict[str, Materializers]) -> None:
        self.for_all = for_all
        self.by_output = by_output

    @classmethod
    def resolve(cls, step_name: str, given: Any) -> OutputMaterializers:
        """Resolve ``given`` (as @step takes it) for step ``step_name``; StepDefinitionError if bad."""
        if isinstance(given, OutputMaterializers):
            return given
        if isinstance(given, Mapping):
            by_output = {}
            for key, value in given.items():
                if not isinstance(key, str):
                    raise StepDefinitionError(
                        f"Step '{step_name}' has output_materializers keyed by {key!r}; key them "
                        "by output name, e.g. output_materializers={'output': MyMaterializer}."
                    )
                by_output[key] = _classes(step_name, value, f"output '{key}'")
            return cls((), by_output)
        return cls(_classes(step_name, given, "its outputs"), {})

    def updated(self, step_name: str, given: Any) -> OutputMaterializers:
        """These with ``given`` over them, merged per output as ZenML's with_options does.

        A dict replaces the materializers of the outputs it names; anything else, all.
        """
        new = OutputMaterializers.resolve(step_name, given)
        if not new.by_output:
            return new
        return OutputMaterializers(self.for_all, {**self.by_output, **new.by_output})

    def check_outputs(self, step_name: str, outputs: list[str]) -> None:
        """Refuse output names that ``outputs`` (the step's output names) do not have."""
        unknown = [key for key in self.by_output if key not in outputs]
        if unknown:
            has = ", ".join(repr(key) for key in outputs) or "none"
            raise StepDefinitionError(
                f"Step '{step_name}' has output_materializers for {_listed(unknown)}, which it "
                f"does not have; its outputs are: {has}. Key output_materializers by those names "
                "(name outputs with Annotated[T, 'name'])."
            )

    def given_for(self, key: str) -> Materializers:
        """The materializers given for output ``key`` (empty if none)."""
        return self.by_output.get(key, self.for_all)


def select_materializer(
    data_type: type, candidates: Materializers
) -> type[BaseMaterializer] | None:
    """The candidate for values of data_type: exact MRO match first, else one that covers it."""
    covering = None
    for klass in data_type.__mro__:
        name = f"{klass.__module__}.{klass.__qualname__}"
        for candidate in candidates:
            associated = candidate.ASSOCIATED_TYPES
            if klass in associated or name in associated:
                return candidate
            if covering is None and candidate.can_save_type(klass):
                covering = candidate
    return covering


def materializers_for_outputs(
    step: Step, specs: list[OutputSpec], values: list[Any]
) -> list[tuple[type[BaseMaterializer], bool]]:
    """(materializer, given by the step) for each output; one error naming every output refused.

    Checks the step's output_materializers keys again (composing checked them already)
    for callers that store outputs of a step they did not compose.
    """
    step.check_output_materializers()
    chosen: list[tuple[type[BaseMaterializer], bool]] = []
    refused: list[str] = []
    for spec, value in zip(specs, values, strict=True):
        candidates = step.materializer_for_output(spec.key)
        data_type = type(value)
        if not candidates:
            chosen.append((materializer_for(data_type), False))
            continue
        found = select_materializer(data_type, candidates)
        if found is None:
            names = " or ".join(c.__qualname__ for c in candidates)
            covers = "; ".join(f"{c.__qualname__}: {associated_label(c)}" for c in candidates)
            refused.append(
                f"output '{spec.key}' is of type {type_label(data_type)}, which {names} "
                f"cannot save (ASSOCIATED_TYPES {covers})"
            )
        else:
            chosen.append((found, True))
    if refused:
        raise MaterializerTypeError(
            f"Step '{step.name}': " + "; ".join(refused) + ". Give those outputs a materializer "
            "for their type with output_materializers={'<output>': ...}, or return a type the "
            "given materializer handles. Nothing of this step was stored."
        )
    return chosen


def _classes(step_name: str, value: Any, what: str) -> Materializers:
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not items:
        raise StepDefinitionError(
            f"Step '{step_name}' gives an empty list of output materializers for {what}; "
            "give a materializer class or leave the output out."
        )
    return tuple(_materializer_class(step_name, item, what) for item in items)


def _materializer_class(step_name: str, item: Any, what: str) -> type[BaseMaterializer]:
    found = item
    if isinstance(item, str):
        try:
            found = import_qualified(item)
        except MaterializerError as error:
            raise StepDefinitionError(
                f"Step '{step_name}' gives the materializer source {item!r} for {what}, which "
                f"does not import: {error}"
            ) from None
    if isinstance(found, type) and issubclass(found, BaseMaterializer):
        return found
    source = f"the source {item!r}, which is " if isinstance(item, str) else ""
    raise StepDefinitionError(
        f"Step '{step_name}' gives {source}{found!r} as materializer for {what}; give a "
        "subclass of cairn.materializers.BaseMaterializer (the class, or its 'module.Class' "
        "source)."
    )


def _listed(keys: list[str]) -> str:
    return ", ".join(f"'{key}'" for key in keys)
