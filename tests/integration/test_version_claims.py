"""Version numbers are claimed by compare-and-set: concurrent writers never collide."""

import os
import subprocess
import sys
import textwrap

import pytest
from cairn import Client

#: The publisher's suite: every test here runs with fast-ingest batches and one at a time.
pytestmark = pytest.mark.usefixtures("cairn_stack", "publish_batches")


WRITER = textwrap.dedent(
    """
    import sys
    from typing import Annotated
    from cairn import pipeline, step

    name = sys.argv[1]

    @step
    def emit(i: int) -> Annotated[int, name]:
        return i

    @pipeline(name="writer_" + name, enable_cache=False)
    def writer(i: int) -> None:
        emit(i)

    for i in range(int(sys.argv[2])):
        writer(i=i)
    """
)


def test_eight_processes_writing_one_name_get_1_to_200(uid: str) -> None:
    name = f"shared_{uid}"
    processes, runs = 8, 25
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(runs)],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
    # the writers' own sequences are not ours: wait for the projector on the client side
    versions = _versions_when_projected(name, processes * runs)
    assert versions == [str(v) for v in range(1, processes * runs + 1)]


def _versions_when_projected(name: str, expected: int) -> list[str]:
    import time

    client = Client()
    deadline = time.monotonic() + 60
    while True:
        found = sorted((v.version for v in client.list_artifact_versions(name)), key=int)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
