"""The cache key: canonical, typed, made of the parts the README lists; and why keys differ."""

from pathlib import Path
from typing import Annotated, Any

import pytest
from cairn import CachePolicy, StepDefinitionError, pipeline, step
from cairn.cache_key import components, explain, input_identity
from cairn.code_digest import code_digests
from cairn.composition import Invocation
from cairn.materializers import CloudpickleMaterializer
from cairn.orchestrator import compose


def helper(x: int) -> int:
    return x + 1


@step
def uses_helper(x: int) -> int:
    return helper(x)


def invocation_of(step_obj: Any, **arguments: Any) -> Invocation:
    @pipeline(name="p")
    def p() -> None:
        step_obj(**arguments)

    return next(iter(compose(p, {}).invocations.values()))


def key_of(step_obj: Any, inputs: dict[str, str] | None = None, **arguments: Any) -> str:
    invocation = invocation_of(step_obj, **arguments)
    return components(invocation, inputs or {}, {}, CachePolicy()).key()


@step
def echo(value: Any) -> str:
    return repr(value)


def test_types_are_kept_one_and_one_point_oh_and_the_string_one_differ() -> None:
    keys = {key_of(echo, value=v) for v in (1, 1.0, "1", True, [1], {"1": 1})}
    assert len(keys) == 6
    assert key_of(echo, value={"a": 1, "b": 2}) == key_of(echo, value={"b": 2, "a": 1})


def test_the_key_is_the_same_in_every_process_for_the_same_parts() -> None:
    parts = components(invocation_of(echo, value=3), {}, {}, CachePolicy())
    assert parts.key() == components(invocation_of(echo, value=3), {}, {}, CachePolicy()).key()
    assert len(parts.key()) == 32 and int(parts.key(), 16) >= 0


def test_inputs_count_by_content_unless_the_policy_adds_ids() -> None:
    default = CachePolicy()
    assert input_identity("id-1", "hash", default) == input_identity("id-2", "hash", default)
    with_ids = CachePolicy(include_artifact_ids=True)
    assert input_identity("id-1", "hash", with_ids) != input_identity("id-2", "hash", with_ids)


def test_code_of_called_user_functions_is_part_of_the_code() -> None:
    digests = code_digests(uses_helper.func)
    assert set(digests) == {"(step function)", f"{__name__}:helper"}
    assert not any(name.startswith(("json", "builtins")) for name in digests)


def test_comments_and_decorator_options_do_not_change_the_code_digest() -> None:
    def first(x: int) -> int:
        return x * 2  # doubled

    def second(x: int) -> int:
        # a comment, and other spacing
        return x * 2

    def third(x: int) -> int:
        return x * 3

    [a], [b], [c] = (list(code_digests(f).values()) for f in (first, second, third))
    assert a == b != c


def test_explain_names_each_kind_of_change() -> None:
    @step(output_materializers=CloudpickleMaterializer)
    def made(x: int) -> Annotated[int, "made_{stage}"]:
        return x

    @step
    def plain(x: int) -> Annotated[int, "other"]:
        return x

    policy = CachePolicy()
    base = components(invocation_of(made, x=1), {"data": "h1"}, {"stage": "a"}, policy)
    old = base.__struct_fields__ and __import__("msgspec").to_builtins(base)
    new = components(invocation_of(plain, x=2), {"data": "h2"}, {"stage": "b"}, policy)
    reasons = explain(old, new)
    text = "\n".join(reasons)
    assert "the step's code changed" in text
    assert "parameter 'x' changed from 1 to 2" in text
    assert "input 'data' has different content" in text
    assert "output 'made_{stage}' is gone" in text and "output 'other' is new" in text
    assert "substitution 'stage' changed from 'a' to None" in text
    assert explain(old, base) == ["the cache key changed"]  # nothing differs: says so plainly


def test_a_materializer_change_is_named() -> None:
    @step
    def by_default(x: int) -> int:
        return x

    import msgspec

    old = msgspec.to_builtins(components(invocation_of(by_default, x=1), {}, {}, CachePolicy()))
    changed = by_default.with_options(output_materializers=CloudpickleMaterializer)
    new = components(invocation_of(changed, x=1), {}, {}, CachePolicy())
    [reason] = explain(old, new)
    assert reason.startswith("output 'output' is stored by ") and "Cloudpickle" in reason


def test_policy_parts_join_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    values = iter(["v1", "v1", "v2"])

    def version() -> str:
        return next(values)

    policy = CachePolicy(file_dependencies=[str(data)], cache_func=version)
    first = components(invocation_of(echo, value=1), {}, {}, policy).key()
    assert components(invocation_of(echo, value=1), {}, {}, policy).key() == first
    assert components(invocation_of(echo, value=1), {}, {}, policy).key() != first  # v2
    data.write_text("changed")
    again = CachePolicy(file_dependencies=[str(data)], cache_func=lambda: "v1")
    assert components(invocation_of(echo, value=1), {}, {}, again).key() != first
    ignoring = CachePolicy(ignored_inputs=["value"])
    assert key_of_with(ignoring, 1) == key_of_with(ignoring, 2)


def key_of_with(policy: CachePolicy, value: Any) -> str:
    return components(invocation_of(echo, value=value), {}, {}, policy).key()


@pytest.mark.parametrize(
    "given, message",
    [
        ({"expires_after": 0}, "expires_after"),
        ({"expires_after": "1h"}, "expires_after"),
        ({"include_step_code": "yes"}, "include_step_code"),
        ({"ignored_inputs": [1]}, "ignored_inputs"),
        ({"cache_func": 42}, "cache_func"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_setting(given: dict[str, Any], message: str) -> None:
    with pytest.raises(StepDefinitionError, match=message):
        CachePolicy(**given)


def test_bad_enable_cache_and_cache_policy_are_refused_where_given() -> None:
    with pytest.raises(StepDefinitionError, match="enable_cache= takes True or False"):
        step(enable_cache="no")(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match="cache_policy= takes a cairn.CachePolicy"):
        pipeline(cache_policy=3)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match="the one named policy is 'default'"):
        step(cache_policy="aggressive")(lambda: None)


def test_source_dependencies_join_the_key_by_their_code() -> None:
    by_object = CachePolicy(source_dependencies=[helper])
    by_name = CachePolicy(source_dependencies=[f"{__name__}.helper"])
    plain = components(invocation_of(echo, value=1), {}, {}, CachePolicy())
    with_source = components(invocation_of(echo, value=1), {}, {}, by_object)
    assert with_source.sources and with_source.key() != plain.key()
    named = components(invocation_of(echo, value=1), {}, {}, by_name)
    assert named.sources == with_source.sources
    with pytest.raises(Exception, match="does not import"):
        components(
            invocation_of(echo, value=1), {}, {}, CachePolicy(source_dependencies=["no.such.x"])
        )


def test_a_cache_func_that_raises_or_returns_no_str_is_named() -> None:
    def broken() -> str:
        raise KeyError("missing")

    with pytest.raises(Exception, match="cache_func=.*raised KeyError"):
        components(invocation_of(echo, value=1), {}, {}, CachePolicy(cache_func=broken))
    with pytest.raises(Exception, match="must return a str"):
        components(invocation_of(echo, value=1), {}, {}, CachePolicy(cache_func=lambda: 3))
    missing = CachePolicy(file_dependencies=["/no/such/file"])
    with pytest.raises(Exception, match="cannot be read"):
        components(invocation_of(echo, value=1), {}, {}, missing)


SCALE = 10


@step
def scaled(x: int, scale: int = SCALE) -> int:
    return x * scale


def test_defaults_left_out_are_recorded_and_part_of_the_key() -> None:
    invocation = invocation_of(scaled, x=1)
    assert invocation.parameters == {"x": 1, "scale": 10}
    assert components(invocation, {}, {}, CachePolicy()).parameters == {"x": 1, "scale": 10}


def test_constants_and_closure_values_the_code_reads_are_part_of_it() -> None:
    import sys
    import types

    module = types.ModuleType("trial_constants")
    sys.modules[module.__name__] = module  # a user module (no file: as __main__ is)
    exec("K = 1\ndef f(x):\n    return x * K\n", module.__dict__)
    before = code_digests(module.f)
    module.K = 2
    after = code_digests(module.f)
    assert before != after and "trial_constants:K (value)" in after

    def make(k: int) -> Any:
        def mul(x: int) -> int:
            return x * k

        return mul

    assert code_digests(make(10)) != code_digests(make(100))

    log: list[int] = []  # a list the step appends to is not part of its key

    def appends(x: int) -> int:
        log.append(x)
        return x

    first = code_digests(appends)
    log.extend([1, 2, 3])
    assert code_digests(appends) == first
    import msgspec

    old = msgspec.to_builtins(components(invocation_of(step(module.f), x=1), {}, {}, CachePolicy()))
    module.K = 3
    new = components(invocation_of(step(module.f), x=1), {}, {}, CachePolicy())
    assert "the value of trial_constants:K changed" in explain(old, new)


def test_another_version_with_the_same_content_is_named_so() -> None:
    policy = CachePolicy(include_artifact_ids=True)
    old = __import__("msgspec").to_builtins(
        components(
            invocation_of(echo, value=1), {"x": input_identity("a", "h", policy)}, {}, policy
        )
    )
    new = components(
        invocation_of(echo, value=1), {"x": input_identity("b", "h", policy)}, {}, policy
    )
    assert explain(old, new) == ["input 'x' is another artifact version (with the same content)"]


def test_policy_mistakes_are_refused_where_they_are_made() -> None:
    with pytest.raises(StepDefinitionError, match="at most 3,153,600,000"):
        CachePolicy(expires_after=float("inf"))
    with pytest.raises(StepDefinitionError, match="source_dependencies"):
        CachePolicy(source_dependencies=[1])
    assert CachePolicy(source_dependencies="os.path").source_dependencies == ("os.path",)
    with pytest.raises(Exception, match=r"cache_func=\.\.\.\) names 'nope.func'"):
        components(invocation_of(echo, value=1), {}, {}, CachePolicy(cache_func="nope.func"))
