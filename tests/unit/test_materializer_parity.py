"""Materializers behave as ZenML's: type checks on save/load, output_materializers, warnings."""

import collections.abc
import os
import uuid
import warnings
from pathlib import Path
from typing import Annotated, Any

import pytest
from cairn import StepDefinitionError, step
from cairn.artifact_stores import LocalArtifactStore
from cairn.materializers import (
    BaseMaterializer,
    BuiltInContainerMaterializer,
    BuiltInMaterializer,
    CloudpickleMaterializer,
    MaterializerError,
    MaterializerTypeError,
    PickleFallbackWarning,
    registry,
)
from cairn.materializers.selection import materializers_for_outputs, select_materializer
from cairn.outputs import save_outputs


class Shape:
    def __init__(self, sides: int) -> None:
        self.sides = sides


class Square(Shape):
    def __init__(self) -> None:
        super().__init__(4)


class Unrelated:
    pass


class ShapeMaterializer(BaseMaterializer):
    """Writes with plain open() under self.uri, as ZenML materializers often do."""

    ASSOCIATED_TYPES = (Shape,)

    def save(self, data: Shape) -> None:
        with open(os.path.join(self.uri, "sides.txt"), "w") as file:
            file.write(str(data.sides))

    def load(self, data_type: type) -> Shape:
        with open(os.path.join(self.uri, "sides.txt")) as file:
            return Shape(int(file.read()))


class SquareMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Square,)

    def save(self, data: Square) -> None:
        with self.artifact_store.open(self.path("square"), "w") as file:
            file.write("square")

    def load(self, data_type: type) -> Square:
        return Square()


class ByNameMaterializer(BaseMaterializer):
    """Names its type as a "module.QualName" string, as built-ins do for optional libraries."""

    ASSOCIATED_TYPES = (f"{__name__}.Shape",)

    def save(self, data: Any) -> None:
        with self.artifact_store.open(self.path("x"), "w") as file:
            file.write("x")

    def load(self, data_type: type) -> Any:
        return Shape(0)


class MappingMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (collections.abc.Mapping,)

    def save(self, data: Any) -> None:
        with self.artifact_store.open(self.path("m"), "w") as file:
            file.write("m")

    def load(self, data_type: type) -> Any:
        return {}


@pytest.fixture(autouse=True, scope="module")
def _not_registered() -> Any:
    """These classes take over lookup of their types only inside this module's tests."""
    yield
    for cls in (ShapeMaterializer, SquareMaterializer, ByNameMaterializer, MappingMaterializer):
        registry.unregister(cls)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def fresh_uri(store: LocalArtifactStore) -> str:
    uri = store.artifact_uri("output", str(uuid.uuid4()))
    store.makedirs(uri)
    return uri


# -- ZenML's import path ----------------------------------------------------------------


def test_base_materializer_module_path_is_the_same_class() -> None:
    from cairn.materializers import BaseMaterializer as Public
    from cairn.materializers.base_materializer import BaseMaterializer as ZenMLPath

    assert ZenMLPath is Public is BaseMaterializer


# -- can_save_type / can_load_type and the checks around save and load ----------------


@pytest.mark.parametrize(
    ("materializer", "data_type", "saves"),
    [
        (ShapeMaterializer, Shape, True),
        (ShapeMaterializer, Square, True),  # a subclass, through the MRO
        (ShapeMaterializer, Unrelated, False),
        (SquareMaterializer, Shape, False),  # a base class is not covered
        (ByNameMaterializer, Square, True),  # "module.QualName" matched along the MRO
        (ByNameMaterializer, Unrelated, False),
        (MappingMaterializer, dict, True),  # an ABC, by issubclass
        (MappingMaterializer, list, False),
        (BuiltInContainerMaterializer, collections.OrderedDict, True),
        (BuiltInMaterializer, Shape, False),
        (CloudpickleMaterializer, Unrelated, True),  # the fallback takes anything
    ],
)
def test_can_save_type(materializer: type[BaseMaterializer], data_type: type, saves: bool) -> None:
    assert materializer.can_save_type(data_type) is saves
    assert materializer.can_handle_type(data_type) is saves


@pytest.mark.parametrize(
    ("materializer", "data_type", "loads"),
    [
        (ShapeMaterializer, Shape, True),
        (ShapeMaterializer, Square, True),
        (SquareMaterializer, Shape, True),  # loading as a base class is fine, as in ZenML
        (SquareMaterializer, object, True),
        (ShapeMaterializer, Unrelated, False),
        (BuiltInContainerMaterializer, list[int], True),  # generic aliases by their origin
        (BuiltInContainerMaterializer, str, False),
        (ShapeMaterializer, Any, True),  # nothing to check against
    ],
)
def test_can_load_type(materializer: type[BaseMaterializer], data_type: Any, loads: bool) -> None:
    assert materializer.can_load_type(data_type) is loads


def test_save_of_a_type_outside_associated_types_raises_type_error(
    store: LocalArtifactStore,
) -> None:
    uri = fresh_uri(store)
    with pytest.raises(TypeError, match=r"ShapeMaterializer cannot save .*Unrelated") as caught:
        ShapeMaterializer(uri, store).save(Unrelated())
    assert isinstance(caught.value, MaterializerTypeError)
    assert isinstance(caught.value, MaterializerError)
    assert f"{__name__}.Shape" in str(caught.value)  # says what it does cover
    assert store.listdir(uri) == []  # refused before anything was written
    with pytest.raises(TypeError, match=r"SquareMaterializer cannot save .*\.Shape"):
        SquareMaterializer(uri, store).save(Shape(3))


def test_load_as_a_type_outside_associated_types_raises_type_error(
    store: LocalArtifactStore,
) -> None:
    uri = fresh_uri(store)
    ShapeMaterializer(uri, store).save(Square())
    assert ShapeMaterializer(uri, store).load(Square).sides == 4
    with pytest.raises(
        TypeError, match=r"ShapeMaterializer cannot load an artifact as .*Unrelated"
    ):
        ShapeMaterializer(uri, store).load(Unrelated)


def test_builtin_materializers_check_types_too(store: LocalArtifactStore) -> None:
    with pytest.raises(TypeError, match=r"BuiltInMaterializer cannot save .*Shape"):
        BuiltInMaterializer(fresh_uri(store), store).save(Shape(1))
    uri = fresh_uri(store)
    BuiltInContainerMaterializer(uri, store).save((1, 2))
    assert BuiltInContainerMaterializer(uri, store).load(tuple) == (1, 2)
    with pytest.raises(TypeError, match="cannot load an artifact as int"):
        BuiltInContainerMaterializer(uri, store).load(int)


def test_check_applies_to_subclasses_without_super_and_with_super(
    store: LocalArtifactStore,
) -> None:
    calls = []

    class Inherits(ShapeMaterializer):  # no save of its own: the inherited check applies
        pass

    class Overrides(ShapeMaterializer):
        def save(self, data: Any) -> None:
            calls.append(data)
            super().save(data)

    try:
        for cls in (Inherits, Overrides):
            with pytest.raises(TypeError, match=f"{cls.__qualname__} cannot save"):
                cls(fresh_uri(store), store).save(Unrelated())
        assert calls == []  # the user's save never ran with the wrong type
        Overrides(fresh_uri(store), store).save(Square())
        assert len(calls) == 1
    finally:
        registry.unregister(Inherits)
        registry.unregister(Overrides)


def test_zenml_validate_methods(store: LocalArtifactStore) -> None:
    materializer = ShapeMaterializer(fresh_uri(store), store)
    materializer.validate_save_type_compatibility(Square)
    materializer.validate_load_type_compatibility(Shape)
    materializer.validate_type_compatibility(Shape)
    with pytest.raises(TypeError):
        materializer.validate_save_type_compatibility(int)
    with pytest.raises(TypeError):
        materializer.validate_load_type_compatibility(int)


def test_associated_types_may_be_a_list_as_in_zenml() -> None:
    class Listed(BaseMaterializer):
        ASSOCIATED_TYPES = [Unrelated]  # type: ignore[assignment]

        def save(self, data: Any) -> None: ...

        def load(self, data_type: type) -> Any: ...

    try:
        assert isinstance(Listed.ASSOCIATED_TYPES, tuple)
        assert list(Listed.ASSOCIATED_TYPES) == [Unrelated]
        assert registry.materializer_for(Unrelated) is Listed
    finally:
        registry.unregister(Listed)


# -- choosing among the materializers a step gives ------------------------------------


def test_select_prefers_an_exact_match_over_a_covering_one() -> None:
    assert select_materializer(Square, (ShapeMaterializer, SquareMaterializer)) is (
        SquareMaterializer
    )
    assert select_materializer(Square, (ShapeMaterializer,)) is ShapeMaterializer
    assert select_materializer(Shape, (SquareMaterializer,)) is None


# -- output_materializers when the step is defined ------------------------------------


def test_output_materializers_for_an_unknown_output_is_refused_at_definition() -> None:
    with pytest.raises(StepDefinitionError) as caught:

        @step(output_materializers={"shape": ShapeMaterializer, "extra": ShapeMaterializer})
        def make() -> Annotated[Shape, "shape"]:
            return Shape(3)

    message = str(caught.value)
    assert "Step 'make'" in message and "'extra'" in message and "'shape'" in message
    assert "its outputs are: 'shape'" in message


def test_output_materializers_keyed_for_unnamed_outputs() -> None:
    @step(output_materializers={"output_1": ShapeMaterializer})
    def pair() -> tuple[int, Shape]:
        return 1, Shape(2)

    assert pair.materializer_for_output("output_1") == (ShapeMaterializer,)
    assert pair.materializer_for_output("output_0") == ()
    with pytest.raises(
        StepDefinitionError, match=r"'output'.*its outputs are: 'output_0', 'output_1'"
    ):

        @step(output_materializers={"output": ShapeMaterializer})
        def pair_wrong() -> tuple[int, Shape]:
            return 1, Shape(2)


def test_source_strings_that_import_are_accepted() -> None:
    source = f"{__name__}.ShapeMaterializer"

    @step(output_materializers=source)
    def one() -> Shape:
        return Shape(1)

    @step(output_materializers={"output": [source, SquareMaterializer]})
    def many() -> Shape:
        return Shape(1)

    assert one.materializer_for_output("output") == (ShapeMaterializer,)
    assert many.materializer_for_output("output") == (ShapeMaterializer, SquareMaterializer)
    assert one.with_options(output_materializers=SquareMaterializer).materializer_for_output(
        "output"
    ) == (SquareMaterializer,)


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("no_such_module_xyz.Materializer", "no module of 'no_such_module_xyz.Materializer'"),
        (f"{__name__}.NoSuchMaterializer", "has no 'NoSuchMaterializer'"),
        (f"{__name__}.Shape", "not .*BaseMaterializer|give a subclass"),
        ("NoDots", "no module"),
    ],
)
def test_source_strings_that_do_not_import_are_refused_at_definition(source: str, why: str) -> None:
    with pytest.raises(StepDefinitionError, match=why) as caught:

        @step(output_materializers={"output": source})
        def make() -> Shape:
            return Shape(1)

    assert "Step 'make'" in str(caught.value) and repr(source) in str(caught.value)


def test_non_materializers_are_refused_at_definition() -> None:
    with pytest.raises(StepDefinitionError, match=r"Step 'make'.*give a subclass"):

        @step(output_materializers=Shape)
        def make() -> Shape:
            return Shape(1)

    with pytest.raises(StepDefinitionError, match="keyed by 1"):
        step(output_materializers={1: ShapeMaterializer})(lambda: Shape(1))


# -- saving a step's outputs (no stack needed: save_outputs writes only to the store) ---


def outputs_of(step_obj: Any, values: list[Any]) -> tuple[list[Any], dict[str, str]]:
    specs = step_obj.outputs
    return specs, {spec.key: f"parity::{step_obj.name}::{spec.key}" for spec in specs}


def test_folder_exists_before_save_so_plain_open_works(store: LocalArtifactStore) -> None:
    @step(output_materializers=ShapeMaterializer)
    def make() -> Shape:
        return Square()

    specs, names = outputs_of(make, [Square()])
    [template] = save_outputs(store, make, "s", "r", specs, [Square()], names)
    assert store.listdir(template.uri) == ["sides.txt"]
    assert template.materializer == f"{__name__}.ShapeMaterializer"
    assert template.data_type == f"{__name__}.Square"


def test_a_materializer_given_for_all_outputs_refuses_those_it_cannot_handle(
    store: LocalArtifactStore,
) -> None:
    @step(output_materializers=ShapeMaterializer)
    def three() -> tuple[Shape, int, str]:
        return Shape(1), 2, "x"

    values = [Shape(1), 2, "x"]
    specs, names = outputs_of(three, values)
    with pytest.raises(MaterializerTypeError) as caught:
        save_outputs(store, three, "s", "r", specs, values, names)
    message = str(caught.value)
    assert "Step 'three'" in message and "ShapeMaterializer" in message
    assert "output 'output_1' is of type int" in message
    assert "output 'output_2' is of type str" in message
    assert "output_0" not in message  # the one it can handle is not blamed
    assert store.listdir(store.root) == []  # nothing was written


def test_a_failing_save_leaves_no_files(store: LocalArtifactStore) -> None:
    class Breaks(BaseMaterializer):
        ASSOCIATED_TYPES = (Unrelated,)

        def save(self, data: Any) -> None:
            with open(os.path.join(self.uri, "half"), "w") as file:
                file.write("half")
            raise RuntimeError("disk full")

        def load(self, data_type: type) -> Any: ...

    try:

        @step(output_materializers={"output_1": Breaks})
        def two() -> tuple[int, Unrelated]:
            return 1, Unrelated()

        values = [1, Unrelated()]
        specs, names = outputs_of(two, values)
        with pytest.raises(RuntimeError, match="disk full"):
            save_outputs(store, two, "s", "r", specs, values, names)
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(store.root) for f in files]
        assert leftovers == []
    finally:
        registry.unregister(Breaks)


def test_pickle_fallback_warning_points_at_the_step(store: LocalArtifactStore) -> None:
    @step
    def opaque() -> Unrelated:
        return Unrelated()

    specs, names = outputs_of(opaque, [Unrelated()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_outputs(store, opaque, "s", "r", specs, [Unrelated()], names)
        save_outputs(store, opaque, "s", "r", specs, [Unrelated()], names)  # once per output
    pickled = [w for w in caught if issubclass(w.category, PickleFallbackWarning)]
    assert len(pickled) == 1
    [warning] = pickled
    code = opaque.func.__code__
    assert (warning.filename, warning.lineno) == (code.co_filename, code.co_firstlineno)
    assert "Step 'opaque' output 'output'" in str(warning.message)
    assert f"{__name__}.Unrelated" in str(warning.message)


# -- keys checked once the outputs are known ------------------------------------------


@step(output_materializers={"later": ShapeMaterializer})
def forward() -> "LaterShape":  # resolvable only once LaterShape is defined below
    return LaterShape(1)


class LaterShape(Shape):
    pass


def test_keys_of_a_step_with_forward_references_are_checked_once_resolvable() -> None:
    with pytest.raises(StepDefinitionError, match=r"Step 'forward'.*'later'.*'output'"):
        forward.check_output_materializers()
    with pytest.raises(StepDefinitionError, match="'later'"):  # and before anything is saved
        materializers_for_outputs(forward, forward.outputs, [LaterShape(1)])


def test_artifact_store_may_be_left_out_as_in_zenml(
    store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_ARTIFACT_STORE", store.root)
    uri = fresh_uri(store)
    ShapeMaterializer(uri).save(Shape(5))  # ZenML's Materializer(uri) form
    materializer = ShapeMaterializer(uri)
    assert os.path.realpath(materializer.artifact_store.root) == os.path.realpath(store.root)
    assert materializer.load(Shape).sides == 5


def test_with_options_merges_output_materializers_per_output_as_zenml() -> None:
    @step(output_materializers=ShapeMaterializer)
    def pair() -> tuple[Shape, Square]:
        return Shape(1), Square()

    changed = pair.with_options(output_materializers={"output_1": SquareMaterializer})
    assert changed.materializer_for_output("output_0") == (ShapeMaterializer,)
    assert changed.materializer_for_output("output_1") == (SquareMaterializer,)
    again = changed.with_options(output_materializers={"output_0": SquareMaterializer})
    assert again.materializer_for_output("output_0") == (SquareMaterializer,)
    assert again.materializer_for_output("output_1") == (SquareMaterializer,)
    replaced = again.with_options(output_materializers=ShapeMaterializer)
    assert replaced.materializer_for_output("output_1") == (ShapeMaterializer,)
    assert pair.with_options(name="renamed").materializer_for_output("output_1") == (
        ShapeMaterializer,
    )
    with pytest.raises(StepDefinitionError, match="'nope'"):
        pair.with_options(output_materializers={"nope": ShapeMaterializer})
