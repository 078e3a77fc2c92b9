"""The cache key of a step invocation: computed here and nowhere else.

The key is the digest of :class:`CacheComponents`, encoded canonically (MessagePack with
map keys sorted, so each part is framed by its length and its type is kept: ``1``,
``1.0`` and ``"1"`` differ; inputs and outputs are maps, so sorted by name). Its parts:

- ``code``: the digest of the step function and of the user code it calls
  (:mod:`cairn.code_digest`), by ``module:qualname``;
- ``parameters``: its parameters after validation, as the run records them (JSON);
- ``inputs``: each input artifact by content hash (and by artifact version id when the
  policy says so), by argument name;
- ``outputs``: each output's name as written (the template, not the resolved name; an
  unnamed output by its key) with its configured version, tags and type;
- ``materializers``: the materializer each output is stored with (the one given, else the
  one registered for its annotation);
- ``config``: the values of the custom placeholders its output names use (not ``date`` or
  ``time``: a cached run keeps its original names);
- ``policy``: the cache policy's settings; ``files``, ``sources`` and ``cache_func``: what
  the policy adds (file contents, other code, the function's string).

Caching on or off, ``enable_cache`` is not part of the key: a run with caching off still
records its entry, which a later run may hit.

The **lineage key** is the same digest with each input from an upstream step of the same
run replaced by that step's lineage key and output name: what a run can compute for every
step before any has run, so it asks for all of its entries at once.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .cache_policy import CachePolicy
from .code_digest import STEP_FUNCTION, VALUE, code_digests
from .errors import CairnError
from .naming import placeholders

if TYPE_CHECKING:
    from .composition import Invocation

_STANDARD = frozenset({"date", "time"})
_encoder = msgspec.msgpack.Encoder(order="sorted")


class CacheComponents(msgspec.Struct, frozen=True, kw_only=True):
    """What a step's cache key is made of (see the module docstring); None: left out."""

    code: dict[str, str] | None
    parameters: dict[str, Any] | None
    inputs: dict[str, str] | None
    outputs: dict[str, Any]
    materializers: dict[str, str]
    config: dict[str, str]
    policy: dict[str, Any]
    files: dict[str, str] = msgspec.field(default_factory=dict)
    sources: dict[str, str] = msgspec.field(default_factory=dict)
    cache_func: str | None = None

    def key(self) -> str:
        return hashlib.blake2b(_encoder.encode(self), digest_size=16).hexdigest()


def components(
    invocation: Invocation,
    inputs: dict[str, str],
    substitutions: dict[str, str],
    policy: CachePolicy,
) -> CacheComponents:
    """The parts of ``invocation``'s key; ``inputs`` maps each input argument to what
    stands for it (see :func:`input_identity`, or an upstream lineage key)."""
    step = invocation.step
    ignored = set(policy.ignored_inputs)
    outputs: dict[str, Any] = {}
    materializers: dict[str, str] = {}
    config: dict[str, str] = {}
    for spec in step.outputs:
        artifact = spec.config
        outputs[spec.key] = [
            spec.name_template,
            None if artifact is None or artifact.version is None else str(artifact.version),
            sorted(artifact.tags) if artifact else [],
            artifact.artifact_type if artifact else None,
            bool(artifact and artifact.is_model_artifact),
        ]
        materializers[spec.key] = _materializer_of(step, spec.key, spec.annotation)
        for field in placeholders(spec.name_template or ""):
            if field not in _STANDARD and field in substitutions:
                config[field] = substitutions[field]
    return CacheComponents(
        code=code_digests(step.func) if policy.include_step_code else None,
        parameters=(
            {k: v for k, v in invocation.parameters.items() if k not in ignored}
            if policy.include_step_parameters
            else None
        ),
        inputs=_inputs_part(inputs, policy),
        outputs=outputs,
        materializers=materializers,
        config=config,
        policy=policy.settings(),
        files={path: _file_digest(path) for path in policy.file_dependencies},
        sources={_label(obj): _source_digest(obj) for obj in policy.source_dependencies},
        cache_func=_cache_func_value(policy.cache_func),
    )


def with_inputs(
    parts: CacheComponents, inputs: dict[str, str], policy: CachePolicy
) -> CacheComponents:
    """``parts`` with its inputs replaced by ``inputs`` (as :func:`components` takes them)."""
    return msgspec.structs.replace(parts, inputs=_inputs_part(inputs, policy))


def _inputs_part(inputs: dict[str, str], policy: CachePolicy) -> dict[str, str] | None:
    if not (policy.include_artifact_values or policy.include_artifact_ids):
        return None
    ignored = policy.ignored_inputs
    return {k: v for k, v in inputs.items() if k not in ignored}


def input_identity(artifact_version_id: str, content_hash: str, policy: CachePolicy) -> str:
    """What stands for an input artifact in the key: its content hash and/or its id."""
    parts = []
    if policy.include_artifact_values:
        parts.append(content_hash)
    if policy.include_artifact_ids:
        parts.append(f"id:{artifact_version_id}")
    return "|".join(parts)


def upstream_identity(lineage_key: str, output_key: str) -> str:
    """What stands for an input from an upstream step of the same run, in a lineage key."""
    return f"step:{lineage_key}:{output_key}"


def _materializer_of(step: Any, key: str, annotation: Any) -> str:
    from .materializers import qualified_name
    from .materializers.registry import materializer_for

    given = step.materializer_for_output(key)
    if given:
        return ",".join(qualified_name(cls) for cls in given)
    target = annotation if isinstance(annotation, type) else None
    if target is None:
        return "(chosen by the value's type)"
    try:
        return qualified_name(materializer_for(target))
    except Exception:  # no materializer for the annotation: the save will say so
        return "(none)"


def _file_digest(path: str) -> str:
    try:
        return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
    except OSError as exc:
        raise CairnError(
            f"CachePolicy(file_dependencies=...) names {path!r}, which cannot be read "
            f"({exc.strerror or exc}); give a file path relative to the working directory "
            f"({Path.cwd()}) or an absolute one."
        ) from None


def _resolve(obj: Any, field: str = "source_dependencies") -> Any:
    if not isinstance(obj, str):
        return obj
    module, _, attribute = obj.replace(":", ".").rpartition(".")
    try:
        target: Any = importlib.import_module(obj)
    except ImportError:
        try:
            target = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError):
            raise CairnError(
                f"CachePolicy({field}=...) names {obj!r}, which does not import; "
                "give 'package.module' or 'package.module.attribute'."
            ) from None
    return target


def _label(obj: Any) -> str:
    target = _resolve(obj)
    return f"{getattr(target, '__module__', target.__name__)}:{getattr(target, '__qualname__', '')}"


def _source_digest(obj: Any) -> str:
    digests = code_digests(_resolve(obj))
    return hashlib.blake2b(_encoder.encode(digests), digest_size=16).hexdigest()


def _cache_func_value(func: Any) -> str | None:
    if func is None:
        return None
    target = _resolve(func, "cache_func")
    try:
        value = target()
    except Exception as exc:
        raise CairnError(
            f"CachePolicy(cache_func={getattr(target, '__qualname__', target)!r}) raised "
            f"{type(exc).__name__}: {exc}; it must return the str that joins the cache key."
        ) from exc
    if not isinstance(value, str):
        raise CairnError(
            f"CachePolicy(cache_func={getattr(target, '__qualname__', target)!r}) returned "
            f"{type(value).__name__}; it must return a str (what joins the cache key)."
        )
    return value


# -- why a key differs ------------------------------------------------------------------


def explain(old: dict[str, Any], new: CacheComponents) -> list[str]:
    """What changed from the components ``old`` (as an entry recorded them) to ``new``."""
    try:
        before = msgspec.convert(old, CacheComponents)
    except msgspec.ValidationError:
        return ["the cache key is made differently than when the earlier entry was recorded"]
    reasons: list[str] = []
    if before.policy != new.policy:
        reasons.append(f"the cache policy changed ({_changes(before.policy, new.policy)})")
    if before.code is not None and new.code is not None and before.code != new.code:
        reasons.extend(_code_changes(before.code, new.code))
    if before.parameters is not None and new.parameters is not None:
        for name in sorted(before.parameters.keys() | new.parameters.keys()):
            if name not in new.parameters:
                reasons.append(f"parameter '{name}' is no longer given")
            elif name not in before.parameters:
                reasons.append(f"parameter '{name}' is new ({_shown(new.parameters[name])})")
            elif _typed(before.parameters[name]) != _typed(new.parameters[name]):
                reasons.append(
                    f"parameter '{name}' changed from {_shown(before.parameters[name])} to "
                    f"{_shown(new.parameters[name])}"
                )
    if before.inputs is not None and new.inputs is not None:
        for name in sorted(before.inputs.keys() | new.inputs.keys()):
            if before.inputs.get(name) != new.inputs.get(name):
                if name not in before.inputs or name not in new.inputs:
                    reasons.append(f"input '{name}' is new or no longer given")
                else:
                    reasons.append(_input_change(name, before.inputs[name], new.inputs[name]))
    for name in sorted(before.outputs.keys() | new.outputs.keys()):
        if before.outputs.get(name) != new.outputs.get(name):
            reasons.append(_output_change(name, before.outputs.get(name), new.outputs.get(name)))
    for name in sorted(before.materializers.keys() & new.materializers.keys()):
        if before.materializers[name] != new.materializers[name]:
            reasons.append(
                f"output '{name}' is stored by {new.materializers[name]} (was "
                f"{before.materializers[name]})"
            )
    for name in sorted(before.config.keys() | new.config.keys()):
        if before.config.get(name) != new.config.get(name):
            reasons.append(
                f"substitution '{name}' changed from {_shown(before.config.get(name))} to "
                f"{_shown(new.config.get(name))}"
            )
    for label, old_part, new_part in (
        ("file", before.files, new.files),
        ("source dependency", before.sources, new.sources),
    ):
        for name in sorted(old_part.keys() | new_part.keys()):
            if old_part.get(name) != new_part.get(name):
                reasons.append(f"{label} '{name}' changed")
    if before.cache_func != new.cache_func:
        reasons.append(
            f"cache_func returned {_shown(new.cache_func)} (was {_shown(before.cache_func)})"
        )
    return reasons or ["the cache key changed"]


def _code_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    reasons = []
    for label in [*after, *(name for name in before if name not in after)]:
        if before.get(label) == after.get(label):
            continue
        if label.endswith(VALUE):
            what = f"the value of {label.removesuffix(VALUE)}"
        elif label == STEP_FUNCTION:
            what = "the step's code"
        else:
            what = f"the code of {label}"
        if label not in before:
            reasons.append(f"{what} is new to it ({label} is now called)")
        elif label not in after:
            reasons.append(f"it no longer calls {label}")
        else:
            reasons.append(f"{what} changed")
    return reasons


def _input_change(name: str, before: str, after: str) -> str:
    """What differs of an input: its content, or only which version it is (same content)."""
    content = [
        [p for p in identity.split("|") if not p.startswith("id:")] for identity in (before, after)
    ]
    if content[0] == content[1]:
        return f"input '{name}' is another artifact version (with the same content)"
    return f"input '{name}' has different content"


def _output_change(name: str, before: Any, after: Any) -> str:
    if before is None:
        return f"output '{name}' is new"
    if after is None:
        return f"output '{name}' is gone"
    fields = ("name", "version", "tags", "artifact type", "model flag")
    changed = [
        f"{field} {_shown(old)} -> {_shown(new)}"
        for field, old, new in zip(fields, before, after, strict=False)
        if old != new
    ]
    return f"output '{name}' changed its {', '.join(changed)}"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {_shown(before.get(k))} -> {_shown(after.get(k))}"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    )


def _typed(value: Any) -> bytes:
    return _encoder.encode(value)  # 1, 1.0 and "1" differ


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
