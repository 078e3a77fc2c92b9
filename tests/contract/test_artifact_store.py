"""Behaviour every ArtifactStore must have. Subclass ArtifactStoreContract per store."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from cairn.artifact_stores import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreError,
    LocalArtifactStore,
    UnsafePathError,
)


def new_id() -> str:
    return str(uuid.uuid4())


class ArtifactStoreContract:
    """Tests shared by all stores; a subclass provides the `store` fixture."""

    @pytest.fixture
    def store(self) -> ArtifactStore:
        raise NotImplementedError

    def write(self, store: ArtifactStore, uri: str, content: bytes) -> None:
        with store.open(uri, "wb") as file:
            file.write(content)

    def read(self, store: ArtifactStore, uri: str) -> bytes:
        with store.open(uri, "rb") as file:
            data: bytes = file.read()
        return data

    # -- locations ---------------------------------------------------------------------

    def test_artifact_uri_is_under_root_slug_and_version(self, store: ArtifactStore) -> None:
        version = new_id()
        uri = store.artifact_uri("my model/v1", version)
        assert uri.startswith(store.root)
        assert uri.endswith((f"my_model_v1/{version}", f"my_model_v1{os.sep}{version}"))

    def test_artifact_uri_canonicalises_uuid(self, store: ArtifactStore) -> None:
        version = new_id()
        assert store.artifact_uri("a", version.upper()) == store.artifact_uri("a", version)
        assert store.artifact_uri("a", uuid.UUID(version)) == store.artifact_uri("a", version)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "bad", ["", "not-a-uuid", "../" + "0" * 36, "0" * 32, "{" + "0" * 36 + "}"]
    )
    def test_invalid_version_id_raises(self, store: ArtifactStore, bad: str) -> None:
        with pytest.raises(UnsafePathError, match="not a UUID"):
            store.artifact_uri("a", bad)

    @pytest.mark.parametrize(
        "name", ["../../etc", "..", ".", "", "a/../../b", "x" * 500, "/etc/passwd"]
    )
    def test_artifact_uri_stays_in_root(self, store: ArtifactStore, name: str) -> None:
        uri = store.artifact_uri(name, new_id())
        self.write(store, uri + "/f", b"x")  # the store itself must accept it as inside the root
        assert store.exists(uri)
        slug = uri[len(store.root) :].strip("/").split("/")[0]
        assert slug not in ("", ".", "..") and len(slug) <= 100

    # -- files -------------------------------------------------------------------------

    def test_write_then_read(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        self.write(store, uri + "/nested/dir/data.bin", b"\x00\x01payload")
        assert self.read(store, uri + "/nested/dir/data.bin") == b"\x00\x01payload"

    def test_text_mode_is_utf8(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id()) + "/t.txt"
        with store.open(uri, "w") as file:
            file.write("héllo ✓")
        assert self.read(store, uri) == "héllo ✓".encode()

    def test_read_missing_raises_not_found(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id()) + "/missing"
        with pytest.raises(ArtifactNotFoundError):
            store.open(uri, "rb")
        with pytest.raises(FileNotFoundError):  # also usable as a plain FileNotFoundError
            store.open(uri, "rb")

    def test_exists_and_makedirs(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        assert not store.exists(uri)
        store.makedirs(uri + "/sub")
        store.makedirs(uri + "/sub")  # idempotent
        assert store.exists(uri) and store.exists(uri + "/sub")

    def test_makedirs_of_a_fresh_artifact_uri_then_of_a_file(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("fresh", new_id())
        store.makedirs(uri)  # only the version folder is new: the common case before a save
        store.makedirs(uri)
        assert store.listdir(uri) == []
        self.write(store, f"{uri}/file", b"x")
        with pytest.raises(FileExistsError):  # a file stays a file
            store.makedirs(f"{uri}/file")
        assert store.listdir(uri) == ["file"]

    def test_listdir_sorted_names(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        for name in ["b", "a", "c"]:
            self.write(store, f"{uri}/{name}", b"")
        store.makedirs(uri + "/d")
        assert store.listdir(uri) == ["a", "b", "c", "d"]
        with pytest.raises(ArtifactNotFoundError):
            store.listdir(uri + "/nope")

    def test_size_of_file_and_tree(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        self.write(store, uri + "/a", b"12345")
        self.write(store, uri + "/sub/b", b"123")
        assert store.size(uri + "/a") == 5
        assert store.size(uri) == 8
        with pytest.raises(ArtifactNotFoundError):
            store.size(uri + "/nope")

    def test_remove_and_rmtree(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        self.write(store, uri + "/a", b"1")
        self.write(store, uri + "/sub/b", b"2")
        store.remove(uri + "/a")
        assert not store.exists(uri + "/a")
        store.rmtree(uri)
        assert not store.exists(uri)
        with pytest.raises(ArtifactNotFoundError):
            store.rmtree(uri)

    def test_rmtree_refuses_root(self, store: ArtifactStore) -> None:
        with pytest.raises(UnsafePathError):
            store.rmtree(store.root)

    # -- digests -----------------------------------------------------------------------

    def make_tree(self, store: ArtifactStore, files: dict[str, bytes]) -> str:
        uri = store.artifact_uri("out", new_id())
        store.makedirs(uri)
        for rel, content in files.items():
            self.write(store, f"{uri}/{rel}", content)
        return uri

    def test_digest_same_content_same_hash(self, store: ArtifactStore) -> None:
        files = {"data.json": b"[1,2]", "sub/x.bin": b"\x00" * 1000, "a": b""}
        first = store.digest(self.make_tree(store, files))
        second = store.digest(self.make_tree(store, dict(reversed(files.items()))))
        assert first == second
        assert first[0].startswith("sha256:") and len(first[0]) == len("sha256:") + 64
        assert first[1] == 1005

    @pytest.mark.parametrize(
        "other",
        [
            {"data.json": b"[1,3]"},  # content
            {"data.jsom": b"[1,2]"},  # relative path
            {"data.json": b"[1,2]", "empty": b""},  # an extra empty file
            {"d/ata.json": b"[1,2]"},  # directory layout
        ],
    )
    def test_digest_different_content_different_hash(
        self, store: ArtifactStore, other: dict[str, bytes]
    ) -> None:
        base = store.digest(self.make_tree(store, {"data.json": b"[1,2]"}))
        assert store.digest(self.make_tree(store, other))[0] != base[0]

    def test_digest_framing_is_unambiguous(self, store: ArtifactStore) -> None:
        one = store.digest(self.make_tree(store, {"a": b"bc", "d": b""}))
        two = store.digest(self.make_tree(store, {"a": b"b", "d": b"c"}))
        assert one[0] != two[0]

    def test_digest_of_file_is_sha256_of_content(self, store: ArtifactStore) -> None:
        import hashlib

        uri = self.make_tree(store, {"f": b"hello"})
        assert store.digest(uri + "/f") == ("sha256:" + hashlib.sha256(b"hello").hexdigest(), 5)

    def test_digest_missing_raises_not_found(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactNotFoundError):
            store.digest(store.artifact_uri("out", new_id()))

    # -- path safety -------------------------------------------------------------------

    def test_dotdot_outside_root_is_refused_everywhere(self, store: ArtifactStore) -> None:
        outside = store.root + "/../x"
        with pytest.raises(UnsafePathError, match="outside the artifact store root"):
            store.open(outside, "wb")
        for operation in (store.exists, store.makedirs, store.listdir, store.size, store.digest):
            with pytest.raises(UnsafePathError):
                operation(outside)
        with pytest.raises(UnsafePathError):
            store.remove(outside)
        with pytest.raises(UnsafePathError):
            store.rmtree(outside)

    def test_dotdot_after_a_missing_directory_is_refused(self, store: ArtifactStore) -> None:
        escape = store.root + "/missing/deeper/../../../escape.txt"
        with pytest.raises(UnsafePathError):
            store.open(escape, "wb")
        with pytest.raises(UnsafePathError):
            store.makedirs(store.root + "/missing/../../escape-dir")

    def test_dotdot_inside_root_is_fine(self, store: ArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        self.write(store, uri + "/sub/../a", b"1")
        assert self.read(store, uri + "/a") == b"1"

    def test_unsafe_error_is_a_store_error(self) -> None:
        assert issubclass(UnsafePathError, ArtifactStoreError)


class TestLocalArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(tmp_path / "store")

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        secret = tmp_path / "outside"
        secret.mkdir()
        (secret / "secret.txt").write_bytes(b"secret")
        return secret

    def test_root_is_created_and_resolved(self, tmp_path: Path) -> None:
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        store = LocalArtifactStore(tmp_path / "link" / "store")
        assert store.root == os.path.realpath(tmp_path / "real" / "store")
        assert os.path.isdir(store.root)

    def test_absolute_path_outside_root_is_refused(self, store: LocalArtifactStore) -> None:
        with pytest.raises(UnsafePathError):
            store.open("/etc/passwd", "rb")

    def test_symlinked_directory_out_of_root_is_refused(
        self, store: LocalArtifactStore, outside: Path
    ) -> None:
        os.symlink(outside, os.path.join(store.root, "escape"))
        target = os.path.join(store.root, "escape", "secret.txt")
        with pytest.raises(UnsafePathError):
            store.open(target, "rb")
        with pytest.raises(UnsafePathError):
            store.open(os.path.join(store.root, "escape", "new.txt"), "wb")
        assert not (outside / "new.txt").exists()

    def test_symlinked_file_out_of_root_is_refused(
        self, store: LocalArtifactStore, outside: Path
    ) -> None:
        uri = store.artifact_uri("out", new_id())
        store.makedirs(uri)
        os.symlink(outside / "secret.txt", os.path.join(uri, "data.json"))
        with pytest.raises(UnsafePathError):
            store.open(os.path.join(uri, "data.json"), "rb")
        with pytest.raises(UnsafePathError):  # digest must not hash files outside the root
            store.digest(uri)
        with pytest.raises(UnsafePathError):
            store.size(uri)

    def test_symlink_then_dotdot_is_resolved_like_the_os(
        self, store: LocalArtifactStore, outside: Path
    ) -> None:
        (outside / "deeper").mkdir()
        os.symlink(outside / "deeper", os.path.join(store.root, "hop"))
        # Lexically root/hop/../secret.txt is inside; the OS resolves it to outside/secret.txt.
        with pytest.raises(UnsafePathError):
            store.open(os.path.join(store.root, "hop", "..", "secret.txt"), "rb")

    def test_symlink_inside_root_is_allowed(self, store: LocalArtifactStore) -> None:
        uri = store.artifact_uri("out", new_id())
        self.write(store, uri + "/real.txt", b"ok")
        os.symlink(os.path.join(uri, "real.txt"), os.path.join(uri, "alias.txt"))
        assert self.read(store, os.path.join(uri, "alias.txt")) == b"ok"
        assert store.size(uri) == 4
        store.remove(os.path.join(uri, "alias.txt"))  # removes the link, not its target
        assert self.read(store, uri + "/real.txt") == b"ok"

    def test_sibling_with_root_as_prefix_is_outside(self, tmp_path: Path) -> None:
        store = LocalArtifactStore(tmp_path / "store")
        (tmp_path / "store-evil").mkdir()
        with pytest.raises(UnsafePathError):
            store.open(str(tmp_path / "store-evil" / "x"), "wb")

    def test_nothing_is_created_outside_root(
        self, store: LocalArtifactStore, tmp_path: Path
    ) -> None:
        before = sorted(p.name for p in tmp_path.iterdir())
        for uri in (
            store.root + "/missing/../../escape.txt",
            store.root + "/a/b/../../../escape.txt",
            store.root + "/../escape.txt",
        ):
            with pytest.raises(UnsafePathError):
                store.open(uri, "wb")
        assert sorted(p.name for p in tmp_path.iterdir()) == before
