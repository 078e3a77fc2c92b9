"""Explicit version numbers: what counts as one, what a claim takes, what the fold checks."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from cairn import ArtifactConfig, ArtifactVersionError
from cairn.claims import _next
from cairn.naming import MAX_REQUESTED_NUMBER, requested_version
from cairn_events import ArtifactMaterialized, is_numeric_version
from cairn_projections import FoldError
from cairn_projections.artifact_versions import fold_artifact_materialized

HIGHEST = 2**63 - 1  # Postgres bigint


def version(number: str, numeric_count: int) -> ArtifactMaterialized:
    return ArtifactMaterialized(
        artifact_version_id=f"av-{number}",
        name="model",
        version=number,
        numeric_count=numeric_count,
        uri=f"/store/{number}",
        artifact_type="data",
        data_type="builtins.int",
        materializer="cairn.materializers.BuiltInMaterializer",
        content_hash="h",
        size=1,
    )


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        (None, None),
        (44, "44"),
        ("44", "44"),
        (1, "1"),
        (MAX_REQUESTED_NUMBER, str(MAX_REQUESTED_NUMBER)),
        (str(MAX_REQUESTED_NUMBER), str(MAX_REQUESTED_NUMBER)),
        ("golden", "golden"),
        ("v44", "v44"),
        ("1.0", "1.0"),  # not a number to int() either: a label, as in ZenML
        ("1e3", "1e3"),
    ],
)
def test_numbers_and_labels_are_taken_in_one_spelling(given: Any, taken: str | None) -> None:
    assert requested_version(given, "model") == taken


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("044", "'044', which reads as the number 44 but is not written as one"),
        (" 44", "' 44', which reads as the number 44"),
        ("44 ", "'44 ', which reads as the number 44"),
        ("44\n", "which reads as the number 44"),
        ("+44", "'+44', which reads as the number 44"),
        ("4_4", "'4_4', which reads as the number 44"),
        ("\u0664\u0664", "which reads as the number 44"),  # Arabic-Indic digits: int() reads them
        (0, "version 0; version numbers you choose run from 1 to 2147483647"),
        ("0", "version '0'; version numbers you choose run from 1"),
        ("00", "version '00'; version numbers you choose run from 1"),
        (-3, "version -3; version numbers you choose run from 1"),
        ("-3", "version '-3'; version numbers you choose run from 1"),
        (
            MAX_REQUESTED_NUMBER + 1,
            f"version {MAX_REQUESTED_NUMBER + 1}; version numbers you choose run from 1 to "
            f"{MAX_REQUESTED_NUMBER}",
        ),
        (HIGHEST, f"version {HIGHEST}; version numbers you choose run from 1"),
        (str(HIGHEST + 1), f"version '{HIGHEST + 1}'; version numbers you choose run from 1"),
        pytest.param(
            10**5000, "version a huge number; version numbers you choose run", id="10**5000"
        ),
        (True, "version True, a bool, which is neither a number nor a label"),
        (False, "version False, a bool"),
        (44.0, "version 44.0, a float, which is neither a number nor a label"),
        (b"44", "a bytes, which is neither a number nor a label"),
        ("", "'', which is empty or blank"),
        ("9" * 300, "is 300 bytes long in UTF-8; the limit is 255 bytes"),
    ],
)
def test_nonsense_is_refused_naming_the_artifact_and_what_to_write(given: Any, says: str) -> None:
    with pytest.raises(ArtifactVersionError) as refused:
        requested_version(given, "model")
    message = str(refused.value)
    assert message.startswith("Artifact 'model' was given the version"), message
    assert says in message
    assert "44" in message or "label" in message  # says what to use instead


def test_the_hint_for_a_number_written_otherwise_is_the_number() -> None:
    with pytest.raises(ArtifactVersionError, match=r'Write version=7 \(or "7"\)'):
        requested_version("007", "model")


def test_artifact_config_takes_a_number_or_a_label() -> None:
    assert requested_version(ArtifactConfig(version=44).version, "m") == "44"
    assert requested_version(ArtifactConfig(version="44").version, "m") == "44"


def test_only_canonical_decimals_are_numeric_versions() -> None:
    assert all(map(is_numeric_version, ["1", "10", "44", str(HIGHEST), str(2**64)]))
    assert not any(map(is_numeric_version, ["0", "044", " 44", "+44", "4_4", "\u0664", "44\n"]))


def test_an_unnumbered_claim_takes_one_more_than_the_highest_number() -> None:
    assert _next("model", None, 0) == ("1", 1)
    assert _next("model", None, 44) == ("45", 45)


def test_an_explicit_number_keeps_the_highest_unless_it_is_higher() -> None:
    assert _next("model", "44", 3) == ("44", 44)
    assert _next("model", "10", 44) == ("10", 44)
    assert _next("model", "golden", 44) == ("golden", 44)


def test_after_the_highest_number_there_is_no_next_one() -> None:
    assert _next("model", str(HIGHEST), 3) == (str(HIGHEST), HIGHEST)
    with pytest.raises(ArtifactVersionError, match="'model' already has the highest version"):
        _next("model", None, HIGHEST)
    assert _next("model", "golden", HIGHEST) == ("golden", HIGHEST)  # labels still work


def test_a_number_below_the_highest_folds_with_the_highest_kept() -> None:
    [change] = fold_artifact_materialized(version("10", 44))
    row = msgspec.structs.asdict(change)
    assert (row["version"], row["numeric_version"], row["numeric_count"]) == ("10", 10, 44)


@pytest.mark.parametrize(
    ("number", "count", "says"),
    [
        ("45", 44, "exceeds its numeric_count 44, which is the highest version number"),
        (str(HIGHEST + 1), HIGHEST, "too large"),
        pytest.param("9" * 4400, HIGHEST, "too large", id="4400-digits"),  # past int()'s limit
    ],
)
def test_the_fold_refuses_numbers_above_the_highest_or_bigint(
    number: str, count: int, says: str
) -> None:
    with pytest.raises(FoldError, match=says):
        fold_artifact_materialized(version(number, count))
