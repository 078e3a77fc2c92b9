"""What lineage does without a server: the Client refuses bad arguments before it asks,
sends good ones as the API takes them, and the CLI's tree stays readable however deep."""

import io
from typing import Any

import httpx
import msgspec
import pytest
from cairn import Client
from cairn.models import ArtifactVersion, LineageEdge, LineageGraph, LineageNode, StepStatus
from cairn_services.cli import _lineage_tree
from factories import artifact_version
from rich.console import Console


class Recorder:
    """An httpx transport handler answering ``answer`` and keeping the requests it got."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=msgspec.json.encode(self.answer))


def client(recorder: Recorder) -> Client:
    return Client("http://cairn", transport=httpx.MockTransport(recorder))


@pytest.mark.parametrize("direction", ["up", "Upstream", "", None, 1, ["upstream"]])
def test_a_direction_that_is_none_of_the_three_is_refused(direction: Any) -> None:
    recorder = Recorder()
    with pytest.raises(ValueError) as caught:
        client(recorder).get_lineage("av-1", direction)
    assert str(caught.value) == (
        f"get_lineage() takes direction='upstream', 'downstream' or 'both'; got {direction!r}"
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    "depth", [0, -1, True, 1.5, "2", 2.0, pytest.param(-(10**5000), id="huge")]
)
def test_a_depth_that_is_no_whole_number_of_hops_is_refused(depth: Any) -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match=r"takes depth=None \(to the ends\) or a whole number"):
        client(recorder).get_lineage("av-1", depth=depth)
    assert recorder.requests == []


def test_what_names_the_version_or_step_run_is_checked() -> None:
    recorder = Recorder()
    with pytest.raises(TypeError, match=r"an artifact version's id \(a str or UUID\); got 42$"):
        client(recorder).get_lineage(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got \[0, 0, .*\.\.\. \(a list\)$"):
        client(recorder).get_lineage([0] * 10_000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got the empty id ' '"):
        client(recorder).list_consumers(" ")
    version = ArtifactVersion(**artifact_version().record())
    with pytest.raises(
        TypeError, match=r"get_run_step\(\) takes a step run's id \(a str or UUID\)"
    ):
        client(recorder).get_run_step(version)  # type: ignore[arg-type]
    assert recorder.requests == []


def test_good_arguments_go_to_the_lineage_route() -> None:
    graph = LineageGraph(artifact_version_id="av/1", direction="both", depth=3, nodes=[], edges=[])
    recorder = Recorder(graph)
    version = ArtifactVersion(**artifact_version(artifact_version_id="av/1").record())
    assert client(recorder).get_lineage(version, "both", 3) == graph
    assert client(recorder).get_lineage("av/1", "both", 3) == graph
    for request in recorder.requests:
        assert request.url.raw_path == b"/artifact-versions/av%2F1/lineage?direction=both&depth=3"
    recorder.answer = graph = msgspec.structs.replace(graph, direction="upstream", depth=None)
    assert client(recorder).get_lineage("av-1") == graph
    assert recorder.requests[-1].url.params == httpx.QueryParams(direction="upstream")


def test_a_version_no_step_stored_has_no_producer_and_asks_nothing() -> None:
    version = ArtifactVersion(**artifact_version(producer_step_run_id=None).record())
    assert version.producer is None  # no Client is made: there is no step run to ask for


def chain(length: int, depth: int | None = None) -> LineageGraph:
    """The upstream lineage of ``v<length>``: each ``v<i>`` made by ``s<i>`` from ``v<i-1>``."""
    nodes = [
        LineageNode(kind="artifact_version", id=f"v{length}", name="chain", version=str(length))
    ]
    edges = []
    for i in range(length, 0, -1):
        nodes += [
            LineageNode(
                kind="step_run",
                id=f"s{i}",
                name=f"step_{i}",
                run_id="r",
                run_name="run",
                status=StepStatus.COMPLETED,
            ),
            LineageNode(kind="artifact_version", id=f"v{i - 1}", name="chain", version=str(i - 1)),
        ]
        edges += [
            LineageEdge(kind="output", source=f"s{i}", target=f"v{i}", key="output"),
            LineageEdge(kind="input", source=f"v{i - 1}", target=f"s{i}", key="previous"),
        ]
    return LineageGraph(
        artifact_version_id=f"v{length}",
        direction="upstream",
        depth=depth,
        nodes=nodes,
        edges=edges,
    )


def drawn(graph: LineageGraph, width: int) -> tuple[list[str], list[str]]:
    """The lines of ``graph``'s tree at ``width``, and the commands drawing what was cut."""
    out = io.StringIO()
    tree, cut = _lineage_tree(graph, width)
    Console(file=out, width=width).print(tree)
    return out.getvalue().splitlines(), cut


def test_a_deep_lineage_is_cut_where_the_width_ends_with_the_command_that_goes_on() -> None:
    lines, cut = drawn(chain(10_000), 80)
    assert lines[0] == "chain:10000  ← step_10000 (completed) in run run  (v10000)"
    assert lines[1].startswith("└── previous = chain:9999  ← step_9999 (completed)")
    # 80 columns leave room for 10 levels of 4: level 10 ends in "…", then what draws the rest
    assert sum("previous = chain:" in line for line in lines) == 10  # labels wrap, not cut
    assert lines[-1].strip(" └─") == "…"
    assert all(len(line) <= 80 for line in lines)
    assert cut == ["cairn artifact lineage v9990"]
    assert drawn(chain(30, depth=25), 80)[1] == ["cairn artifact lineage v20 --depth 15"]
    lines, cut = drawn(chain(20), 200)
    assert (len(lines), cut) == (21, [])  # all of it: 21 versions
    # the last version of a whole chain says no step run made it; at the depth asked, nothing
    assert drawn(chain(3), 200)[0][-1].endswith("previous = chain:0  (no step run stored it)")
    assert drawn(chain(3, depth=3), 200)[0][-1].endswith("previous = chain:0")
