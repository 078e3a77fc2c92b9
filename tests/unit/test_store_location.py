"""Artifact stores are chosen by the scheme of a location or a uri, and materializers build
their files' uris through the store."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from cairn.artifact_stores import ArtifactStore, ArtifactStoreError, LocalArtifactStore
from cairn.artifact_stores.location import (
    _SCHEMES,
    register_scheme,
    scheme_of,
    store_for,
    store_for_uri,
)
from cairn.materializers import BuiltInMaterializer


def test_plain_paths_and_file_uris_are_local_stores(tmp_path: Path) -> None:
    plain = store_for(str(tmp_path / "plain"))
    assert isinstance(plain, LocalArtifactStore) and os.path.isdir(plain.root)
    local = store_for(f"file://{tmp_path}/file")
    assert isinstance(local, LocalArtifactStore)
    assert local.root == os.path.realpath(tmp_path / "file")
    assert scheme_of("/a/b") == scheme_of("file:///a") == "file"
    assert scheme_of("S3://bucket") == "s3"


def test_s3_says_it_comes_later_and_names_the_setting() -> None:
    with pytest.raises(ArtifactStoreError) as refused:
        store_for("s3://bucket/prefix")
    message = str(refused.value)
    assert "'s3://'" in message and "later version" in message
    assert "CAIRN_ARTIFACT_STORE" in message
    assert "S3 artifact stores come" in message and "(issue 13)" in message
    with pytest.raises(ArtifactStoreError, match=r"'S3:bucket' uses 's3://'.*\(issue 13\)"):
        store_for("S3:bucket")  # a scheme Cairn knows, in any case, even without "//"


@pytest.mark.parametrize(
    "location",
    ["FILE://{root}", "File://{root}", "file:{root}", "file://localhost{root}", "file://{quoted}"],
)
def test_file_uris_in_any_case_and_spelling_name_their_absolute_path(
    location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "my store"
    uri = location.format(root=root, quoted=str(root).replace(" ", "%20"))
    store = store_for(uri)
    assert isinstance(store, LocalArtifactStore) and store.root == os.path.realpath(root)
    assert os.listdir(tmp_path) == ["my store"]  # no ./FILE: or ./file: directory


@pytest.mark.parametrize(
    ("location", "advice"),
    [
        (
            "file://relative/dir",
            r"'relative' is its host part .* Write file:///relative/dir for the absolute path "
            r"/relative/dir, or the plain path relative/dir for one relative to the working",
        ),
        ("file://otherhost/data", r"'otherhost' is its host part"),
        ("file:relative", r"names an absolute path, and 'relative' is not one"),
        ("file://", r"names an absolute path, and it names none"),
        ("file:///data?x=1", r"has a '\?' or '#' part"),
        ("", r"location is empty; set CAIRN_ARTIFACT_STORE"),
    ],
)
def test_a_file_uri_that_names_no_local_absolute_path_is_refused(
    location: str, advice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactStoreError, match=advice):
        store_for(location)
    assert os.listdir(tmp_path) == []  # nothing created, not even ./relative/dir


def test_a_plain_path_expands_the_home_directory_and_keeps_other_colons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    home = LocalArtifactStore.at("~/artifacts")
    assert home.root == os.path.realpath(tmp_path / "home" / "artifacts")
    named = LocalArtifactStore.at("runs:1")
    assert named.root == os.path.realpath(tmp_path / "runs:1")  # a directory name
    assert scheme_of("runs:1") == scheme_of("~/x") == "file"
    assert sorted(os.listdir(tmp_path)) == ["home", "runs:1"]  # no literal ./~


def test_an_unknown_scheme_says_which_ones_there_are() -> None:
    with pytest.raises(ArtifactStoreError, match=r"'gs://'.*no artifact store for it.*file://"):
        store_for("gs://bucket")


def test_a_version_loads_from_the_store_its_uri_names(tmp_path: Path) -> None:
    configured = store_for(str(tmp_path / "configured"))
    elsewhere = LocalArtifactStore(tmp_path / "elsewhere")
    inside = configured.artifact_uri("a", "0190c6a2-0000-7000-8000-000000000001")
    outside = elsewhere.artifact_uri("b", "0190c6a2-0000-7000-8000-000000000002")
    assert store_for_uri(inside, str(tmp_path / "configured")) is configured
    assert store_for_uri(outside, str(tmp_path / "configured")).root == elsewhere.root
    assert store_for_uri(outside, None).root == elsewhere.root
    with pytest.raises(ArtifactStoreError, match="Artifact version uri 's3://b/a/1'"):
        store_for_uri("s3://b/a/1", None)


class MemoryStore(ArtifactStore):
    """An object store in a dict, with "mem://" uris joined by "/"."""

    files: dict[str, bytes] = {}

    def __init__(self, root: str) -> None:
        self._root = root.rstrip("/")

    @classmethod
    def at(cls, location: str) -> "MemoryStore":
        return cls(location)

    @property
    def root(self) -> str:
        return self._root

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        import io

        store = self

        class Written(io.BytesIO):
            def close(self) -> None:
                store.files[uri] = self.getvalue()
                super().close()

        return Written() if "w" in mode else io.BytesIO(self.files[uri])

    def exists(self, uri: str) -> bool:
        return uri in self.files

    def makedirs(self, uri: str) -> None:
        pass

    def listdir(self, uri: str) -> list[str]:
        return sorted(key[len(uri) + 1 :] for key in self.files if key.startswith(uri + "/"))

    def size(self, uri: str) -> int:
        return sum(len(v) for k, v in self.files.items() if k.startswith(uri))

    def digest(self, uri: str) -> tuple[str, int]:
        return "sha256:0", self.size(uri)

    def rmtree(self, uri: str) -> None:
        for key in [k for k in self.files if k.startswith(uri + "/")]:
            del self.files[key]

    def remove(self, uri: str) -> None:
        del self.files[uri]


@pytest.fixture
def mem_scheme() -> Iterator[None]:
    register_scheme("mem", MemoryStore)
    try:
        yield
    finally:
        del _SCHEMES["mem"]
        store_for.cache_clear()


@pytest.mark.usefixtures("mem_scheme")
def test_a_registered_scheme_gets_its_store_and_materializers_write_through_it() -> None:
    store = store_for("mem://bucket/prefix")
    assert isinstance(store, MemoryStore)
    uri = store.artifact_uri("numbers", "0190c6a2-0000-7000-8000-000000000003")
    assert uri == "mem://bucket/prefix/numbers/0190c6a2-0000-7000-8000-000000000003"
    BuiltInMaterializer(uri, store).save(7)
    assert store.listdir(uri) == ["data.json"]  # joined by the store, with "/"
    found = store_for_uri(uri, None)
    assert found is store  # its root is two segments up, in the same scheme
    assert BuiltInMaterializer(uri, found).load(int) == 7
