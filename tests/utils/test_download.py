import hashlib
import re

import pytest

from fcnseg.utils.download import (
    ChecksumError,
    DownloadError,
    download,
    extract_archive,
    file_checksum,
)

PAYLOAD = bytes(range(256)) * 64


@pytest.fixture()
def served(loopback_server):
    (loopback_server.root / "file.bin").write_bytes(PAYLOAD)
    return loopback_server


def test_download_verifies_and_caches(tmp_path, served):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    path = download(served.url("file.bin"), md5=md5, directory=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and file_checksum(path) == md5
    before = len(served.requests)
    assert download(served.url("file.bin"), md5=md5, directory=tmp_path, progress=False) == path
    assert len(served.requests) == before  # the verified cached file is reused


def test_sha256_prefix_is_accepted(tmp_path, served):
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    assert download(served.url("file.bin"), sha256=prefix, directory=tmp_path,
                    progress=False).is_file()


def test_resume_asks_only_for_the_missing_bytes(tmp_path, served):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    path = download(served.url("file.bin"), md5=hashlib.md5(PAYLOAD).hexdigest(),
                    directory=tmp_path, progress=False)
    assert served.range_requests == ["bytes=1000-"]
    assert path.read_bytes() == PAYLOAD


def test_mismatch_deletes_the_data_and_names_both_digests(tmp_path, served):
    with pytest.raises(ChecksumError) as info:
        download(served.url("file.bin"), md5="f" * 32, directory=tmp_path / "dl", progress=False)
    assert "f" * 32 in str(info.value) and hashlib.md5(PAYLOAD).hexdigest() in str(info.value)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_cached_file_with_the_wrong_checksum_is_fetched_again(tmp_path, served):
    (tmp_path / "file.bin").write_bytes(b"stale")
    path = download(served.url("file.bin"), md5=hashlib.md5(PAYLOAD).hexdigest(),
                    directory=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_a_failed_download_keeps_the_cached_file_it_would_replace(tmp_path, served):
    (tmp_path / "gone.bin").write_bytes(b"a copy the user put here")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(served.url("gone.bin"), md5="0" * 32, directory=tmp_path, progress=False)
    assert (tmp_path / "gone.bin").read_bytes() == b"a copy the user put here"


def test_html_page_instead_of_a_file_is_an_error(tmp_path, loopback_server):
    (loopback_server.root / "login.html").write_text("<html>sign in</html>")
    with pytest.raises(DownloadError, match="HTML page"):
        download(loopback_server.url("login.html"), filename="weights.pth", directory=tmp_path,
                 progress=False)


def test_missing_file_reports_the_http_status(tmp_path, loopback_server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(loopback_server.url("nothing.bin"), directory=tmp_path, progress=False)


def test_extract_refuses_paths_outside_the_target(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DownloadError, match="unsafe member path"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    import tarfile

    src = tmp_path / "a.txt"
    src.write_bytes(b"x" * 5000)
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(src, arcname="a.txt")
    archive.write_bytes(archive.read_bytes()[:1024])
    with pytest.raises(DownloadError, match="could not be extracted|not a tar or zip"):
        extract_archive(archive, tmp_path / "out")


def test_a_zip_whose_compressed_data_is_corrupt_is_a_clear_error(tmp_path):
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "".join(f"line {k}\n" for k in range(500)))
    data = bytearray(archive.read_bytes())
    start = 30 + len("a.txt")  # the local header, then the member's deflated bytes
    data[start + 5:start + 40] = bytes(b ^ 0x55 for b in data[start + 5:start + 40])
    archive.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="could not be extracted"):
        extract_archive(archive, tmp_path / "out")


def test_a_zip_member_named_in_utf8_without_its_flag_is_extracted_as_unzip_names_it(tmp_path):
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/cafXX.png", b"x")  # 'café' is 5 UTF-8 bytes: patched in below
    # as macOS's Archive Utility writes it: the name's UTF-8 bytes, not flagged as UTF-8
    archive.write_bytes(archive.read_bytes().replace(b"cafXX", "café".encode()))
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "café.png").read_bytes() == b"x"


def _tar(path, members):
    """A tar archive of ``(name, "file" | "dir")`` members, in this order."""
    import io
    import tarfile

    with tarfile.open(path, "w") as tf:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = 2
                tf.addfile(info, io.BytesIO(b"hi"))
    return path


def _zip(path, members):
    """A zip archive of ``(name, "file" | "link")`` members, in this order; names may be empty
    (which zipfile's own writer refuses)."""
    import stat
    import zipfile

    class AnyName(zipfile.ZipInfo):
        def is_dir(self):
            return self.filename.endswith("/")

    with zipfile.ZipFile(path, "w") as zf:
        for name, kind in members:
            info = AnyName(name)
            if kind == "link":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            with zf.open(info, "w") as f:
                f.write(b"/etc" if kind == "link" else b"hi")
    return path


@pytest.mark.parametrize(("make", "members", "message"), [
    (_tar, [("a", "file"), ("a/b", "file")],
     r"cannot extract member 'a/b': a file earlier in the archive has the name of one of its "
     r"folders"),
    (_zip, [("a", "file"), ("a/b", "file")],
     r"cannot extract member 'a/b': a file earlier"),
    (_tar, [("a/b", "file"), ("a", "file")],
     r"cannot extract member 'a': a folder earlier in the archive has its name"),
    (_tar, [("", "file")], r"refusing a member with an empty name"),
    (_zip, [("", "file")], r"refusing a member with an empty name"),
    (_zip, [("l", "link"), ("l/x", "file")], r"refusing link member 'l'"),
])
def test_members_that_cannot_be_extracted_are_one_line_naming_archive_and_member(
    tmp_path, make, members, message
):
    archive = make(tmp_path / ("bad.tar" if make is _tar else "bad.zip"), members)
    with pytest.raises(DownloadError) as info:
        extract_archive(archive, tmp_path / "out")
    assert str(info.value).startswith(f"{archive}: ") and "\n" not in str(info.value)
    assert re.search(message, str(info.value)), str(info.value)
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-extracted is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name, "out"]


def test_an_archive_of_a_dot_folder_still_extracts(tmp_path):
    archive = _tar(tmp_path / "dot.tar", [(".", "dir"), ("./d", "dir"), ("./d/x", "file")])
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "x").read_bytes() == b"hi"


def test_a_cached_file_with_the_wrong_checksum_offline_names_the_mismatch(tmp_path):
    (tmp_path / "file.bin").write_bytes(b"not the published file")
    with pytest.raises(ChecksumError) as info:
        download("http://127.0.0.1:9/file.bin", md5="0" * 32, directory=tmp_path,
                 progress=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'file.bin'}: checksum mismatch: md5 is ")
    assert "the published one is " + "0" * 32 in message and "\n" not in message
    assert (tmp_path / "file.bin").read_bytes() == b"not the published file"  # kept
