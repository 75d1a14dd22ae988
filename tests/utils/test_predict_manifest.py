"""The manifest of fcnseg predict's outputs: one parser for the writer and every reader."""

from __future__ import annotations

import re
from pathlib import Path

from fcnseg.data.annotations.reviewed import predict_outputs
from fcnseg.inference.files import record_outputs, record_written, written_by
from fcnseg.utils.predict_manifest import MANIFEST_NAME, content_digest, read_manifest


def test_read_manifest_gives_the_latest_digest_and_writer_of_each_listed_file(tmp_path):
    a, b = tmp_path / "a_label.png", tmp_path / "sub" / "b_label.png"
    record_outputs(tmp_path, [a, b], [content_digest(b"one"), content_digest(b"two")])
    record_written(tmp_path, "sha256=job", [a, b])
    record_outputs(tmp_path, [b])  # listed again, without a digest: not written whole since

    digests, writers = read_manifest(tmp_path)

    assert digests == {a: content_digest(b"one"), b: content_digest(b"two")}
    assert writers == {a: "sha256=job", b: None}


def test_the_writer_and_the_annotation_import_read_one_manifest_alike(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("a_label.png\tsha256=aa\n\twritten\tjob\ta_label.png\n"
                                          "old.png\n", encoding="utf-8")

    assert written_by(tmp_path) == {tmp_path / "a_label.png": "job", tmp_path / "old.png": None}
    assert predict_outputs(tmp_path) == {(tmp_path / "a_label.png").resolve(): "sha256=aa",
                                         (tmp_path / "old.png").resolve(): None}


def test_a_folder_without_a_manifest_lists_nothing(tmp_path):
    assert read_manifest(tmp_path) == ({}, {})
    assert predict_outputs(Path(tmp_path)) == {}


def test_no_data_module_imports_the_inference_package():
    import fcnseg.data

    package = Path(fcnseg.data.__file__).parent
    upward = re.compile(r"^\s*(from|import) fcnseg\.inference\b", re.MULTILINE)
    importing = [p.relative_to(package).as_posix() for p in sorted(package.rglob("*.py"))
                 if upward.search(p.read_text(encoding="utf-8"))]
    assert importing == []
