"""Local S3: URI ↔ path mapping, objects, listing, and SageMaker's S3Prefix download semantics."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.local.home import continuum_home
from pipelines.local.s3 import LocalS3, NoSuchKey, S3UriError, split_s3_uri


@pytest.fixture()
def s3(tmp_path: Path) -> LocalS3:
    return LocalS3(tmp_path / "s3")


def test_continuum_home_follows_env_and_defaults_to_dot_continuum(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUUM_HOME", str(tmp_path / "custom"))
    assert continuum_home() == tmp_path / "custom"
    assert (tmp_path / "custom").is_dir()
    monkeypatch.delenv("CONTINUUM_HOME")
    monkeypatch.chdir(tmp_path)
    assert continuum_home() == tmp_path / ".continuum"
    assert (tmp_path / ".continuum").is_dir()


def test_uri_maps_to_root_bucket_key(s3):
    assert s3.path("s3://bkt/a/b/c.txt") == s3.root / "bkt" / "a" / "b" / "c.txt"
    assert s3.path("s3://bkt") == s3.root / "bkt"
    assert s3.path("s3://bkt/prefix/") == s3.root / "bkt" / "prefix"
    assert split_s3_uri("s3://bkt/a/b") == ("bkt", "a/b")


@pytest.mark.parametrize("uri, fragment", [
    ("bkt/key", "not an S3 URI"),
    ("https://bkt.s3.amazonaws.com/key", "not an S3 URI"),
    ("s3:///key", "has no bucket"),
    ("s3://Bad_Bucket/key", "invalid S3 bucket name 'Bad_Bucket'"),
    ("s3://bkt/a/../b", "'..'"),
    ("s3://bkt/a//b", "empty"),
])
def test_bad_uris_are_rejected_with_the_reason(s3, uri, fragment):
    with pytest.raises(S3UriError, match=re.escape(fragment)):
        s3.put_bytes(uri, b"x")


def test_put_get_exists_and_delete_prunes_empty_folders(s3, tmp_path):
    s3.put_bytes("s3://bkt/a/b/one.bin", b"\x00\x01")
    source = tmp_path / "two.txt"
    source.write_text("two", encoding="utf-8")
    s3.put_file("s3://bkt/a/two.txt", source)
    assert s3.get_bytes("s3://bkt/a/b/one.bin") == b"\x00\x01"
    assert s3.get_bytes("s3://bkt/a/two.txt") == b"two"
    assert s3.exists("s3://bkt/a/two.txt") and not s3.exists("s3://bkt/a") and not s3.exists("s3://bkt/nope")
    assert s3.head("s3://bkt/a/b/one.bin").size == 2
    s3.delete("s3://bkt/a/b/one.bin")
    assert not (s3.root / "bkt" / "a" / "b").exists()
    assert (s3.root / "bkt" / "a" / "two.txt").is_file()
    with pytest.raises(NoSuchKey, match="s3://bkt/a/b/one.bin"):
        s3.get_bytes("s3://bkt/a/b/one.bin")


def test_an_object_cannot_also_be_a_folder(s3):
    s3.put_bytes("s3://bkt/a", b"file")
    with pytest.raises(S3UriError, match="both an object and a folder"):
        s3.put_bytes("s3://bkt/a/b", b"x")
    assert s3.get_bytes("s3://bkt/a") == b"file"
    assert not any((s3.root / ".staging").iterdir())


def test_list_uses_string_prefix_semantics_in_key_order(s3):
    for key in ("data/train/b.jsonl", "data/train/a.jsonl", "data/train2/c.jsonl", "data/valid/d.jsonl", "other"):
        s3.put_bytes(f"s3://bkt/{key}", key.encode())
    assert s3.list("s3://bkt/data/train") == [
        "s3://bkt/data/train/a.jsonl", "s3://bkt/data/train/b.jsonl", "s3://bkt/data/train2/c.jsonl"]
    assert s3.list("s3://bkt/data/train/") == ["s3://bkt/data/train/a.jsonl", "s3://bkt/data/train/b.jsonl"]
    assert len(s3.list("s3://bkt")) == 5
    assert s3.list("s3://missing-bucket/x") == []


def test_upload_dir_then_download_prefix_round_trips_relative_paths(s3, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / ".hidden").write_text("dot")
    (src / "sub" / "deep" / "leaf.txt").write_text("leaf")
    uris = s3.upload_dir(src, "s3://bkt/runs/1/")
    assert uris == ["s3://bkt/runs/1/.hidden", "s3://bkt/runs/1/sub/deep/leaf.txt", "s3://bkt/runs/1/top.txt"]
    out = tmp_path / "out"
    written = s3.download_prefix("s3://bkt/runs/1", out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [".hidden", "sub/deep/leaf.txt", "top.txt"]
    assert (out / "sub" / "deep" / "leaf.txt").read_text() == "leaf"


def test_download_prefix_of_a_single_object_lands_under_its_name(s3, tmp_path):
    s3.put_bytes("s3://bkt/models/v1/model.tar.gz", b"tar")
    written = s3.download_prefix("s3://bkt/models/v1/model.tar.gz", tmp_path / "model")
    assert written == [tmp_path / "model" / "model.tar.gz"]
    assert written[0].read_bytes() == b"tar"


def test_download_prefix_ending_inside_a_segment_keeps_that_segment(s3, tmp_path):
    s3.put_bytes("s3://bkt/data/train/a.jsonl", b"a")
    s3.put_bytes("s3://bkt/data/train2/b.jsonl", b"b")
    written = s3.download_prefix("s3://bkt/data/train", tmp_path / "in")
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in written) == ["a.jsonl", "train2/b.jsonl"]


def test_download_of_an_empty_prefix_fails_like_sagemaker_unless_allowed(s3, tmp_path):
    s3.create_bucket("bkt")
    with pytest.raises(NoSuchKey, match="no S3 objects found under s3://bkt/nothing"):
        s3.download_prefix("s3://bkt/nothing", tmp_path / "in")
    assert s3.download_prefix("s3://bkt/nothing", tmp_path / "in", allow_empty=True) == []


def test_buckets_are_top_level_folders(s3):
    s3.create_bucket("alpha")
    s3.put_bytes("s3://beta/x", b"1")
    assert [name for name, _ in s3.list_buckets()] == ["alpha", "beta"]
    assert s3.bucket_exists("alpha") and not s3.bucket_exists("gamma")
