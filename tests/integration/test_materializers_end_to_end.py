"""Materializers end to end as in ZenML: real stack, real runs, failures recorded."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Annotated, Any

import pytest
from cairn import Client, pipeline, step
from cairn.materializers import (
    BaseMaterializer,
    MaterializerNotFoundError,
    MaterializerTypeError,
    PickleFallbackWarning,
    registry,
)
from cairn.materializers.base_materializer import BaseMaterializer as ZenMLPathBase

pytestmark = pytest.mark.usefixtures("cairn_stack")


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class Opaque:
    pass


class PointMaterializer(ZenMLPathBase):
    """Written as in ZenML's docs: plain open() of a file under self.uri."""

    ASSOCIATED_TYPES = (Point,)

    def save(self, data: Point) -> None:
        with open(os.path.join(self.uri, "data.json"), "w") as file:
            file.write(f'{{"x": {data.x}, "y": {data.y}}}')

    def load(self, data_type: type) -> Point:
        import json

        with open(os.path.join(self.uri, "data.json")) as file:
            raw = json.load(file)
        return Point(raw["x"], raw["y"])


@pytest.fixture(autouse=True, scope="module")
def _not_registered() -> Any:
    yield
    registry.unregister(PointMaterializer)


def files_under(root: str, name_part: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) if name_part in d for f in files]


def failed_run(pipeline_name: str) -> Any:
    runs = Client().list_pipeline_runs(pipeline_name=pipeline_name)
    assert len(runs) == 1
    return Client().get_pipeline_run(runs[0].id)


def test_zenml_style_materializer_with_plain_open_round_trips(uid: str) -> None:
    assert ZenMLPathBase is BaseMaterializer

    @step(output_materializers=f"{__name__}.PointMaterializer")  # a source string, as in ZenML
    def make_point() -> Annotated[Point, f"point_{uid}"]:
        return Point(2, 3)

    @pipeline(name=f"plain_open_{uid}")
    def p() -> None:
        make_point()

    run = p()
    stored = Client().get_artifact_version(f"point_{uid}")
    assert stored.id == run.steps["make_point"].output.id
    assert stored.materializer == f"{__name__}.PointMaterializer"
    assert os.listdir(stored.uri) == ["data.json"]
    loaded = stored.load()
    assert (type(loaded), loaded.x, loaded.y) == (Point, 2, 3)


def test_materializer_that_cannot_handle_the_output_fails_the_step(uid: str) -> None:
    @step(output_materializers=PointMaterializer)
    def not_a_point() -> Annotated[Any, f"wrong_{uid}"]:
        return 41

    @pipeline(name=f"wrong_type_{uid}")
    def p() -> None:
        not_a_point()

    with pytest.raises(MaterializerTypeError) as caught:
        p()
    message = str(caught.value)
    for part in ("Step 'not_a_point'", "output 'wrong_", "type int", "PointMaterializer"):
        assert part in message
    assert "nothing at" not in message  # not the store's missing-file error
    stored = failed_run(f"wrong_type_{uid}")
    assert stored.status == "failed"
    assert stored.steps["not_a_point"].status == "failed"
    assert "PointMaterializer" in (stored.error or "")
    assert files_under(os.environ["CAIRN_ARTIFACT_STORE"], f"wrong_{uid}") == []


def test_one_materializer_for_several_outputs_applies_where_it_can(uid: str) -> None:
    @step(output_materializers=PointMaterializer)
    def points() -> tuple[Point, Point]:
        return Point(1, 2), Point(3, 4)

    @step(output_materializers=PointMaterializer)
    def mixed() -> tuple[Point, int, str]:
        return Point(1, 2), 3, "four"

    @pipeline(name=f"all_points_{uid}")
    def ok() -> None:
        points()

    run = ok()
    outputs = run.steps["points"].outputs
    assert [outputs[k].load().y for k in ("output_0", "output_1")] == [2, 4]
    assert {o.materializer for o in outputs.values()} == {f"{__name__}.PointMaterializer"}

    @pipeline(name=f"mixed_{uid}")
    def bad() -> None:
        mixed()

    with pytest.raises(MaterializerTypeError) as caught:
        bad()
    message = str(caught.value)
    assert "output 'output_1' is of type int" in message
    assert "output 'output_2' is of type str" in message
    assert "output_0" not in message
    stored = failed_run(f"mixed_{uid}")
    assert (stored.status, stored.steps["mixed"].status) == ("failed", "failed")
    assert stored.steps["mixed"].outputs == {}  # the Point it could store was not stored alone


def test_pickle_fallback_warning_names_the_step_and_points_at_it(uid: str) -> None:
    @step
    def opaque_maker() -> Opaque:
        return Opaque()

    @pipeline(name=f"pickled_{uid}")
    def p() -> None:
        opaque_maker()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p()
    [warning] = [w for w in caught if issubclass(w.category, PickleFallbackWarning)]
    assert "Step 'opaque_maker' output 'output'" in str(warning.message)
    code = opaque_maker.func.__code__
    assert warning.filename == code.co_filename == __file__
    assert warning.lineno == code.co_firstlineno


MAIN_SCRIPT = """
import sys
import warnings
from typing import Annotated, Tuple

from cairn import pipeline, step
from cairn.materializers.base_materializer import BaseMaterializer


class Word:
    def __init__(self, text):
        self.text = text


class WordMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Word,)

    def save(self, data):
        with open(self.uri + "/word.txt", "w") as file:
            file.write(data.text)

    def load(self, data_type):
        with open(self.uri + "/word.txt") as file:
            return Word(file.read())


@step(output_materializers=WordMaterializer)
def words() -> Tuple[Annotated[Word, "first_{uid}"], Annotated[Word, "second_{uid}"]]:
    return Word("hello"), Word("world")


@pipeline(name="main_{uid}")
def p():
    words()


warnings.simplefilter("always")
run = p()
p()
print(run.steps["words"].outputs["first_{uid}"].id)
print("loaded here:", run.steps["words"].outputs["first_{uid}"].load().text)
"""


def test_materializer_defined_in_main_is_warned_about_and_explained_on_load(
    uid: str, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT).replace("{uid}", uid))
    done = subprocess.run(
        [sys.executable, str(script)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    version_id, loaded_there = done.stdout.strip().splitlines()[-2:]
    assert loaded_there == "loaded here: hello"  # the defining process can load it
    warned = [line for line in done.stderr.splitlines() if "MainModuleMaterializerWarning" in line]
    assert len(warned) == 1, done.stderr  # once per class, for two outputs and two runs
    assert f"{script}:" in warned[0]  # attributed to the user's script
    assert "WordMaterializer" in warned[0] and "__main__" in warned[0]

    stored = Client().get_artifact_version(version_id)
    assert stored.materializer == "__main__.WordMaterializer"
    with pytest.raises(MaterializerNotFoundError) as caught:
        stored.load()
    message = str(caught.value)
    assert "defined in a script run as __main__" in message
    assert "importable module" in message
    assert "renamed" not in message
