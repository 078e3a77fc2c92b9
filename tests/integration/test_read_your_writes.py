"""After a run returns (or fails), every read through the Client sees what it recorded.

The SDK hands the Client the stream sequence of its last acknowledged publish;
the API waits until the projector has committed it. One sequence too low and a
new name is a 404 about once in 400 reads, so this runs hundreds of runs.
Set CAIRN_RYW_RUNS to run more.
"""

import os
from typing import Annotated

import pytest
from cairn import Client, NotFoundError, get_step_context, pipeline, step

RUNS = int(os.environ.get("CAIRN_RYW_RUNS", "300"))


@pytest.mark.usefixtures("cairn_stack")
def test_reads_after_each_run_see_it_with_zero_misses(uid: str) -> None:
    runs: list[str] = []

    @step
    def dated() -> Annotated[int, f"ryw_{uid}_{{date}}_{{time}}"]:
        runs.append(get_step_context().run_id)
        return 1

    @step
    def static(x: int) -> Annotated[int, f"ryw_static_{uid}"]:
        return x + 1

    @step
    def boom(x: int) -> None:
        raise ValueError("planned failure")

    @pipeline(name=f"ryw_{uid}", enable_cache=False)
    def p(fail: bool = False) -> None:
        y = static(dated())
        if fail:
            boom(y)

    client = Client()
    misses: list[str] = []
    for i in range(RUNS):
        fail = i % 10 == 9
        try:
            p(fail=fail)
        except ValueError:
            assert fail
        try:
            misses += check_reads(client, uid, i, runs[-1], fail)
        except NotFoundError as exc:
            misses.append(f"run {i}: {exc}")
    assert misses == [], f"{len(misses)} reads of {RUNS} runs missed: {misses[:10]}"


def check_reads(client: Client, uid: str, i: int, run_id: str, fail: bool) -> list[str]:
    """What run ``i`` should look like to a reader right after it returned; the misses."""
    misses = []
    stored = client.get_pipeline_run(run_id)
    if stored.status != ("failed" if fail else "completed"):
        misses.append(f"run {i}: status {stored.status}")
    outputs = {name: s.outputs for name, s in stored.steps.items()}
    if set(outputs) != ({"dated", "static", "boom"} if fail else {"dated", "static"}):
        return [*misses, f"run {i}: steps {sorted(outputs)}"]
    if len(outputs["dated"]) != 1 or f"ryw_static_{uid}" not in outputs["static"]:
        return [*misses, f"run {i}: outputs {outputs['dated']} {outputs['static']}"]
    (dated_name,) = outputs["dated"]
    static_version = outputs["static"][f"ryw_static_{uid}"].version
    if client.get_artifact_version(dated_name).version != "1":
        misses.append(f"run {i}: {dated_name} latest")
    if [v.version for v in client.list_artifact_versions(dated_name)] != ["1"]:
        misses.append(f"run {i}: {dated_name} listed")
    if client.get_artifact_version(f"ryw_static_{uid}").version != static_version:
        misses.append(f"run {i}: static latest is not {static_version}")
    if static_version != str(i + 1):
        misses.append(f"run {i}: static version {static_version}")
    return misses
