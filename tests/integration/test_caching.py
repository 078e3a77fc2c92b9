"""Step caching end to end: hits, misses and why, names kept, precedence, gone data.

Against the real stack (nats-server, Postgres, projector, query API). No ``from __future__
import annotations``: steps annotate with local names.
"""

import shutil
from pathlib import Path
from typing import Annotated, Any

import pytest
from cairn import CachePolicy, Client, pipeline, step

pytestmark = pytest.mark.usefixtures("cairn_stack")


def step_line(out: str, name: str) -> str:
    lines = [line for line in out.splitlines() if f" {name} " in f" {line} "]
    return "\n".join(lines)


def test_a_second_run_is_served_from_cache_keeping_names_and_versions(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    @step
    def load() -> Annotated[int, f"numbers_{uid}_{{time}}"]:
        calls.append("load")
        return 41

    @step
    def add_one(x: int) -> Annotated[int, f"answer_{uid}"]:
        calls.append("add_one")
        return x + 1

    @pipeline(name=f"cached_{uid}")
    def cached() -> None:
        add_one(load())

    first = cached()
    capsys.readouterr()
    second = cached()
    out = capsys.readouterr().out

    assert calls == ["load", "add_one"]  # the second run computed nothing
    assert second.status == "cached"
    assert f"Using cached version of step load (from run {first.name})." in out
    assert f"Using cached version of step add_one (from run {first.name})." in out
    assert f"All steps of pipeline run {second.name} were cached." in out
    for name in ("load", "add_one"):
        before, after = first.steps[name], second.steps[name]
        assert after.status == "cached" and after.original_step_run_id == before.id
        # the same versions under the same names, {time} keeping the first run's value
        assert set(after.outputs) == set(before.outputs)
        assert [v.id for v in after.outputs.values()] == [v.id for v in before.outputs.values()]

    recorded = Client().get_pipeline_run(second.id)
    assert recorded.status == "cached"
    assert recorded.steps["add_one"].status == "cached"
    assert recorded.steps["add_one"].original_step_run_id == first.steps["add_one"].id
    assert recorded.steps["add_one"].output.load() == 42
    assert Client().get_artifact_version(f"answer_{uid}").version == "1"  # no new version


def test_a_changed_parameter_misses_and_says_what_changed(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @step
    def scale(factor: float) -> int:
        return int(10 * factor)

    @pipeline(name=f"param_{uid}")
    def param(factor: float) -> None:
        scale(factor)

    param(0.1)
    capsys.readouterr()
    run = param(0.2)
    line = step_line(capsys.readouterr().out, "scale")

    assert run.steps["scale"].status == "completed"
    assert "Step scale is not cached: parameter 'factor' changed from 0.1 to 0.2" in line
    recorded = Client().get_pipeline_run(run.id).steps["scale"]
    assert recorded.cache_miss_reasons == ["parameter 'factor' changed from 0.1 to 0.2"]
    assert param(0.1).steps["scale"].status == "cached"  # the first entry still serves


def test_types_count_in_the_key(uid: str) -> None:
    @step
    def echo(value: Any) -> str:
        return repr(value)

    @pipeline(name=f"typed_{uid}")
    def typed(value: Any) -> None:
        echo(value)

    typed(1)
    assert typed("1").steps["echo"].status == "completed"
    assert typed(1).steps["echo"].status == "cached"


def test_an_upstream_that_reproduces_identical_data_lets_the_downstream_hit(uid: str) -> None:
    calls: list[str] = []

    @step(enable_cache=False)
    def produce() -> int:
        calls.append("produce")
        return 7

    @step
    def consume(x: int) -> int:
        calls.append("consume")
        return x * 2

    @pipeline(name=f"reproduce_{uid}")
    def reproduce() -> None:
        consume(produce())

    first = reproduce()
    second = reproduce()
    assert calls == ["produce", "consume", "produce"]
    assert second.steps["produce"].status == "completed"  # a new version, same content
    assert second.steps["produce"].output.id != first.steps["produce"].output.id
    assert second.steps["consume"].status == "cached"


def test_a_step_invoked_twice_with_the_same_key_is_computed_once(uid: str) -> None:
    calls: list[int] = []

    @step
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @pipeline(name=f"twice_{uid}")
    def twice() -> None:
        square(3)
        square(3, id="square_again")
        square(4, id="square_four")

    run = twice()
    assert calls == [3, 4]
    again = run.steps["square_again"]
    assert again.status == "cached" and again.original_step_run_id == run.steps["square"].id
    assert again.output.id == run.steps["square"].output.id


def test_step_settings_win_over_the_pipeline_and_with_options_over_decorators(uid: str) -> None:
    calls: list[str] = []

    @step
    def plain() -> int:
        calls.append("plain")
        return 1

    @step(enable_cache=True)
    def keen() -> int:
        calls.append("keen")
        return 2

    @step(enable_cache=False)
    def shy() -> int:
        calls.append("shy")
        return 3

    @pipeline(name=f"precedence_{uid}", enable_cache=False)
    def precedence() -> None:
        plain()
        keen()
        shy()
        shy.with_options(enable_cache=True)(id="shy_opted_in")

    precedence()  # records every entry, caching off or not
    calls.clear()
    run = precedence()
    assert run.steps["plain"].status == "completed"  # the pipeline's False
    assert run.steps["keen"].status == "cached"  # the step's True wins over it
    assert run.steps["shy"].status == "completed"
    assert run.steps["shy_opted_in"].status == "cached"  # with_options wins over @step
    assert sorted(calls) == ["plain", "shy"]

    calls.clear()
    on = precedence.with_options(enable_cache=True)()  # with_options wins over @pipeline
    assert on.steps["plain"].status == "cached" and on.steps["shy"].status == "completed"
    reasons = Client().get_pipeline_run(run.id).steps["plain"].cache_miss_reasons
    assert reasons == ["caching is disabled for this step (enable_cache=False on the pipeline)"]


def test_caching_off_still_records_the_entry_a_later_run_hits(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @step(substitutions={"custom_placeholder": "resolution"})
    def demo() -> tuple[
        Annotated[int, f"name_{uid}_{{date}}_{{time}}"],
        Annotated[int, f"name_{uid}_{{custom_placeholder}}"],
    ]:
        return 42, 43

    @pipeline(name=f"seed_{uid}")
    def my_pipeline() -> None:
        demo()

    without_cache = my_pipeline.with_options(enable_cache=False)()
    out = capsys.readouterr().out
    assert f"Caching is disabled by default for seed_{uid}." in out
    with_cache = my_pipeline.with_options(enable_cache=True)()
    assert set(without_cache.steps["demo"].outputs) == set(with_cache.steps["demo"].outputs)
    assert with_cache.steps["demo"].status == "cached"


def test_a_downstream_step_of_a_cached_time_named_output_hits(uid: str) -> None:
    @step
    def stamp() -> Annotated[str, f"stamped_{uid}_{{time}}"]:
        return "data"

    @step
    def shout(text: str) -> str:
        return text.upper()

    @pipeline(name=f"stamped_{uid}")
    def stamped() -> None:
        shout(stamp())

    first = stamped()
    second = stamped()
    assert second.steps["shout"].status == "cached"
    assert set(second.steps["stamp"].outputs) == set(first.steps["stamp"].outputs)


def test_deleted_data_is_not_a_hit_and_the_line_says_why(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @step
    def make() -> int:
        return 5

    @pipeline(name=f"gone_{uid}")
    def gone() -> None:
        make()

    first = gone()
    uri = first.steps["make"].output.uri
    shutil.rmtree(Path(uri))
    capsys.readouterr()
    second = gone()
    line = step_line(capsys.readouterr().out, "make")
    assert second.steps["make"].status == "completed"
    assert "is missing from the artifact store" in line and uri in line
    assert gone().steps["make"].status == "cached"  # from the second run's entry


def test_a_failed_step_leaves_no_entry(uid: str) -> None:
    attempts: list[int] = []

    @step
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time fails")
        return 1

    @pipeline(name=f"flaky_{uid}")
    def flaky_pipeline() -> None:
        flaky()

    with pytest.raises(RuntimeError):
        flaky_pipeline()
    assert flaky_pipeline().steps["flaky"].status == "completed"
    assert flaky_pipeline().steps["flaky"].status == "cached"


def test_a_changed_output_name_or_code_misses(uid: str, capsys: pytest.CaptureFixture[str]) -> None:
    def build(name: str, add: int) -> Any:
        @step(name="maker")
        def maker() -> Annotated[int, name]:
            return 1 + add

        @pipeline(name=f"shape_{uid}")
        def shape() -> None:
            maker()

        return shape

    build(f"a_{uid}", 0)()
    capsys.readouterr()
    build(f"b_{uid}", 0)()
    assert f"output 'a_{uid}' is gone" in step_line(capsys.readouterr().out, "maker")


def test_cache_policy_can_leave_parameters_out_and_entries_expire(uid: str) -> None:
    @step(cache_policy=CachePolicy(include_step_parameters=False))
    def loose(x: int) -> int:
        return x

    @step(cache_policy=CachePolicy(expires_after=0.5))
    def fleeting() -> int:
        return 1

    @pipeline(name=f"policy_{uid}")
    def policy(x: int) -> None:
        loose(x)
        fleeting()

    policy(1)
    run = policy(2)
    assert run.steps["loose"].status == "cached"  # x is not part of its key
    assert run.steps["fleeting"].status == "cached"
    import time

    time.sleep(0.6)
    late = policy(3)
    assert late.steps["fleeting"].status == "completed"
    assert (
        "expired at" in Client().get_pipeline_run(late.id).steps["fleeting"].cache_miss_reasons[0]
    )


CONCURRENT_SCRIPT = """
import os, sys, time
from pathlib import Path
from typing import Annotated
from cairn import pipeline, step

work = Path(sys.argv[1])
uid = sys.argv[2]

@step
def slow() -> Annotated[int, f"leased_{uid}"]:
    with open(work / "computed", "a") as log:
        log.write("slow\\n")
    time.sleep(1.0)  # long enough for every other process to reach the same key
    return 1

@step
def after(x: int) -> Annotated[int, f"leased_after_{uid}"]:
    with open(work / "computed", "a") as log:
        log.write("after\\n")
    return x + 1

@pipeline(name=f"leased_{uid}")
def leased() -> None:
    after(slow())

while not (work / "go").exists():
    time.sleep(0.01)
run = leased()
print("STATUS", run.steps["slow"].status, run.steps["after"].status)
"""


def test_concurrent_identical_runs_compute_each_step_once(uid: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "leased.py"
    script.write_text(CONCURRENT_SCRIPT)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), uid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    import time

    time.sleep(3.0)  # let them all import cairn and wait at the line
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=120) for p in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    computed = (tmp_path / "computed").read_text().split()
    assert sorted(computed) == ["after", "slow"]  # each step computed once, by one process
    statuses = sorted(line for out, _ in results for line in out.splitlines() if "STATUS" in line)
    assert statuses.count("STATUS completed completed") == 1
    assert statuses.count("STATUS cached cached") == 15
    assert len(Client().list_artifact_versions(f"leased_{uid}")) == 1
    assert len(Client().list_artifact_versions(f"leased_after_{uid}")) == 1


def test_why_not_cached_prints_what_the_line_said(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from test_local_stack import cairn

    values = iter([1, 2])

    @step(enable_cache=False)
    def source() -> int:
        return next(values)

    @step
    def double(x: int) -> int:
        return 2 * x

    @pipeline(name=f"why_{uid}")
    def why() -> None:
        double(source())

    first = why()
    capsys.readouterr()
    second = why()
    [line] = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("Step double is not")
    ]
    assert line == (
        "Step double is not cached: input 'x' has different content (compared with run "
        f"{first.name})."
    )
    Client().get_pipeline_run(second.id)  # the API has it before the CLI asks

    printed = cairn("step", "why-not-cached", second.name, "double", env=dict(os.environ))
    assert printed.returncode == 0, printed.stderr
    assert line.removeprefix("Step double is not cached: ") in printed.stdout
    hit = cairn("step", "why-not-cached", second.name, "source", env=dict(os.environ))
    assert "caching is disabled for this step (enable_cache=False on the step)" in hit.stdout
    unknown = cairn("step", "why-not-cached", second.name, "nope", env=dict(os.environ))
    assert unknown.returncode == 1 and "has no step 'nope'" in unknown.stdout + unknown.stderr
    assert "source, double" in unknown.stdout + unknown.stderr


def test_a_changed_step_function_misses_saying_its_code_changed(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def version_one() -> int:
        return 1

    def version_two() -> int:
        return 2

    def pipeline_of(body: Any) -> Any:
        worker = step(name="worker")(body)

        @pipeline(name=f"code_{uid}")
        def code() -> None:
            worker()

        return code

    pipeline_of(version_one)()
    pipeline_of(version_two)()
    assert "Step worker is not cached: the step's code changed" in capsys.readouterr().out


def test_a_cached_step_keeps_what_it_saved_itself(uid: str) -> None:
    from cairn import save_artifact

    @step
    def with_extra() -> int:
        save_artifact({"note": 1}, f"extra_{uid}")
        return 1

    @pipeline(name=f"extra_{uid}")
    def extra() -> None:
        with_extra()

    first = extra()
    second = extra()
    assert second.steps["with_extra"].status == "cached"
    assert set(second.steps["with_extra"].outputs) == set(first.steps["with_extra"].outputs)
    assert f"extra_{uid}" in second.steps["with_extra"].outputs
    assert len(Client().list_artifact_versions(f"extra_{uid}")) == 1


def _publish_raw(subject: str, payload: bytes) -> None:
    import asyncio
    import os

    import nats

    async def send() -> None:
        nc = await nats.connect(os.environ["CAIRN_NATS_URL"])
        try:
            await nc.jetstream().publish(subject, payload, timeout=5)
        finally:
            await nc.close()

    asyncio.run(send())


def test_forged_facts_on_a_key_neither_stall_nor_break_a_run(
    uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    from cairn_events import DEFAULT_STREAM, CacheLeased, cache_path, encode

    monkeypatch.setenv("CAIRN_CACHE_LEASE_S", "1")
    calls: list[int] = []

    @step
    def target() -> int:
        calls.append(1)
        return 1

    @pipeline(name=f"forged_{uid}")
    def forged() -> None:
        target()

    first = forged()
    key = Client().get_pipeline_run(first.id).steps["target"].cache_key
    assert key
    subject = DEFAULT_STREAM.subject(cache_path(key))
    shutil.rmtree(Path(first.steps["target"].output.uri))  # so the next run must compute

    _publish_raw(subject, b"\x00 not an event")
    t0 = time.monotonic()
    assert forged().steps["target"].status == "completed"
    assert time.monotonic() - t0 < 5

    lease = CacheLeased(
        cache_key=key,
        run_id="forger",
        step_run_id="forged-step-run",
        step_name="target",
        until=datetime.now(UTC) + timedelta(days=365),
    )
    _publish_raw(subject, encode(lease))
    shutil.rmtree(Path(Client().get_artifact_version(first.steps["target"].output.name).uri))
    t0 = time.monotonic()
    assert forged().steps["target"].status == "completed"  # waited at most ~1 s, then computed
    assert time.monotonic() - t0 < 10
    assert len(calls) == 3


KILLED_SCRIPT = """
import sys, time
from pathlib import Path
from cairn import pipeline, step

work, uid = Path(sys.argv[1]), sys.argv[2]

@step
def long_one(variant: str) -> int:
    (work / "started").touch()
    time.sleep(float(sys.argv[3]))  # not part of the key
    return 1

@pipeline(name=f"killed_{uid}")
def killed() -> None:
    long_one(uid)

print("STATUS", killed().steps["long_one"].status)
"""


def test_a_killed_holders_lease_runs_out_and_a_live_holder_keeps_its_own(
    uid: str, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT)
    env = {**os.environ, "CAIRN_CACHE_LEASE_S": "1.5"}

    def start(seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), uid, str(seconds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    holder = start(60)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and holder.poll() is None, holder.communicate()
        time.sleep(0.05)
    holder.send_signal(signal.SIGKILL)  # holds the lease, never renews it again
    holder.wait(10)
    (tmp_path / "started").unlink()
    t0 = time.monotonic()
    out, err = start(0).communicate(timeout=60)  # waits for the dead lease, then computes
    assert "STATUS completed" in out, err
    assert "waits for run" in out and "enable_cache=False" in out
    assert time.monotonic() - t0 < 20
    (tmp_path / "started").unlink()

    # a live holder computing longer than its lease renews it: a waiter reuses its outputs
    other = f"{uid}_live"
    slow = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), other, "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (tmp_path / "started").exists():
        time.sleep(0.05)
    waiter = subprocess.run(
        [sys.executable, str(script), str(tmp_path), other, "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    slow_out, slow_err = slow.communicate(timeout=60)
    assert "STATUS completed" in slow_out, slow_err
    assert "STATUS cached" in waiter.stdout, waiter.stderr


def test_the_returned_run_and_why_not_cached_say_why_a_step_computed(uid: str) -> None:
    @step
    def counted(n: int) -> int:
        return n

    @pipeline(name=f"returned_{uid}")
    def returned(n: int) -> None:
        counted(n)

    returned(1)
    run = returned(2)
    assert run.steps["counted"].cache_miss_reasons == ["parameter 'n' changed from 1 to 2"]
    assert run.steps["counted"].cache_key


def test_a_typo_in_ignored_inputs_fails_before_anything_is_recorded(uid: str) -> None:
    from cairn import StepDefinitionError

    @step(cache_policy=CachePolicy(ignored_inputs=["sead"]))
    def seeded(seed: int) -> int:
        return seed

    @pipeline(name=f"typo_{uid}")
    def typo() -> None:
        seeded(1)

    with pytest.raises(StepDefinitionError, match="names 'sead', which the step does not take"):
        typo()
    assert Client().list_pipeline_runs(pipeline_name=f"typo_{uid}") == []


def test_a_key_that_cannot_be_computed_fails_the_step_and_is_recorded(uid: str) -> None:
    from cairn import CairnError

    @step(cache_policy=CachePolicy(file_dependencies=["/no/such/file.csv"]))
    def needs_file() -> int:
        return 1

    @pipeline(name=f"nofile_{uid}")
    def nofile() -> None:
        needs_file()

    with pytest.raises(CairnError, match="cannot be read"):
        nofile()
    [run] = Client().list_pipeline_runs(pipeline_name=f"nofile_{uid}")
    [reason] = run.steps["needs_file"].cache_miss_reasons
    assert (
        reason.startswith("its cache key could not be computed") and "/no/such/file.csv" in reason
    )


def test_a_lost_explicit_version_says_why_the_step_computed(uid: str) -> None:
    from cairn import ArtifactConfig, ArtifactVersionError

    @step
    def pinned() -> Annotated[int, ArtifactConfig(name=f"pinned_{uid}", version="golden")]:
        return 1

    @pipeline(name=f"pinned_{uid}")
    def pinned_pipeline() -> None:
        pinned()

    first = pinned_pipeline()
    shutil.rmtree(Path(first.steps["pinned"].output.uri))
    with pytest.raises(ArtifactVersionError) as taken:
        pinned_pipeline()
    message = str(taken.value)
    assert "already has version 'golden'" in message
    assert (
        "its cache entry could not be used" in message
        and "missing from the artifact store" in message
    )


def test_why_not_cached_of_a_cached_step_names_the_run_it_reused(uid: str) -> None:
    import os

    from test_local_stack import cairn

    @step
    def steady() -> str:
        return uid  # a body of its own: the same code elsewhere would share its entries

    @pipeline(name=f"steady_{uid}")
    def steady_pipeline() -> None:
        steady()

    first = steady_pipeline()
    second = steady_pipeline()
    Client().get_pipeline_run(second.id)  # the API has it before the CLI asks
    printed = cairn("step", "why-not-cached", second.name, "steady", env=dict(os.environ))
    assert printed.returncode == 0, printed.stderr
    assert (
        f"was served from cache: it reused the outputs of step run {first.steps['steady'].id}"
        in printed.stdout
    )
    assert f"of run {first.name}." in printed.stdout


def test_a_changed_materializer_misses_and_says_so(
    uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cairn.materializers import CloudpickleMaterializer

    @step
    def stored() -> Annotated[dict[str, int], f"stored_{uid}"]:
        return {"a": 1}

    @pipeline(name=f"materializer_{uid}")
    def by_default() -> None:
        stored()

    @pipeline(name=f"materializer_{uid}")
    def by_pickle() -> None:
        stored.with_options(output_materializers=CloudpickleMaterializer)()

    by_default()
    capsys.readouterr()
    with pytest.warns(UserWarning, match="is stored with cloudpickle"):
        run = by_pickle()
    line = step_line(capsys.readouterr().out, "stored")
    assert run.steps["stored"].status == "completed"
    assert f"output 'stored_{uid}' is stored by" in line and "CloudpickleMaterializer" in line


def test_the_cache_lookup_refuses_bad_bodies_and_answers_after_them(uid: str) -> None:
    import os

    import httpx

    api = os.environ["CAIRN_API_URL"]
    cases = {
        b"not json": "must be JSON like",
        b'{"keys": [1]}': "must be JSON like",
        b'{"keys": ["' + b"a" * 200 + b'"]}': "is no cache key",
        b'{"keys": ["\\u0000"]}': "is no cache key",
        b'{"steps": [["p", "\\u0001"]]}': "Step name",
        b'{"lineage_keys": [' + b",".join([b'"k"'] * 1001) + b"]}": "at most 1000",
        b"x" * (1024 * 1024 + 1): "the limit is",
    }
    with httpx.Client(base_url=api, timeout=15) as http:
        for body, message in cases.items():
            answer = http.post("/cache/lookup", content=body)
            assert answer.status_code == 400, (body[:40], answer.text)
            assert message in answer.json()["message"], answer.text

        @step
        def after_bad() -> str:
            return uid

        @pipeline(name=f"after_bad_{uid}")
        def after() -> None:
            after_bad()

        after()
        assert after().steps["after_bad"].status == "cached"  # lookups still answer
