"""loaders/hsc_ssp/tars.py: batch tar member names and safe extraction of hostile tars."""

from __future__ import annotations

import io
import tarfile

import pytest

from loaders.hsc_ssp.tars import parse_member_name, safe_extract
from warehouse.errors import CutoutError


def test_parse_member_name():
    assert parse_member_name("arch-181021-121648/2-cutout-HSC-I-8523-pdr2_wide.fits") == (
        0,
        "HSC-I",
        8523,
        "pdr2_wide",
    )
    assert parse_member_name("1001-cutout-NB0921-9813-pdr2_dud.fits") == (
        999,
        "NB0921",
        9813,
        "pdr2_dud",
    )
    assert parse_member_name("x/5-cutout-HSC-R2-10054-s20a_wide.fits")[:3] == (3, "HSC-R2", 10054)
    with pytest.raises(CutoutError, match="names list line 1"):
        parse_member_name("arch-1/1-cutout-HSC-G-8523-pdr2_wide.fits")
    with pytest.raises(CutoutError, match="is not named"):
        parse_member_name("arch-1/readme.txt")


# -- hostile tars ----------------------------------------------------------------------------------


def make_tar(path, members):
    """Write a tar from (TarInfo-kwargs, data) pairs."""
    with tarfile.open(path, "w") as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


GOOD = ({"name": "arch-1/2-cutout-HSC-G-8523-pdr2_wide.fits"}, b"SIMPLE  = T")


@pytest.mark.parametrize(
    "member,reason",
    [
        ({"name": "/tmp/evil.fits"}, "absolute path"),
        ({"name": "../evil.fits"}, "climbs out"),
        ({"name": "arch-1/../../evil.fits"}, "climbs out"),
        ({"name": "arch-1/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "is a link"),
        ({"name": "arch-1/hard", "type": tarfile.LNKTYPE, "linkname": "../outside/x"}, "is a link"),
        (
            {"name": "arch-1/dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3},
            "not a regular file",
        ),
        ({"name": "arch-1/fifo", "type": tarfile.FIFOTYPE}, "not a regular file"),
    ],
)
def test_safe_extract_refuses_hostile_members(tmp_path, member, reason):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "box" / "dest"
    data = b"evil" if member.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else None
    name = member["name"]
    tar = make_tar(tmp_path / "bad.tar", [(dict(GOOD[0]), GOOD[1]), (dict(member), data)])
    with pytest.raises(CutoutError, match=reason) as info:
        safe_extract(tar, dest)
    assert repr(name) in str(info.value)
    assert str(info.value).startswith(f"{tar}: ")  # which tar, of the many a command may get
    assert [p for p in dest.rglob("*") if p.is_file()] == []  # checked before writing anything
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar", "box", "outside"]


def test_safe_extract_does_not_follow_a_symlink_planted_in_dest(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "arch-1").symlink_to(outside, target_is_directory=True)
    tar = make_tar(tmp_path / "t.tar", [(dict(GOOD[0]), GOOD[1])])
    with pytest.raises(CutoutError, match="resolves outside"):
        safe_extract(tar, dest)
    assert list(outside.iterdir()) == []


def test_safe_extract_writes_regular_files_and_directories(tmp_path):
    tar = make_tar(
        tmp_path / "t.tar",
        [({"name": "arch-1", "type": tarfile.DIRTYPE}, None), (dict(GOOD[0]), GOOD[1])],
    )
    files = safe_extract(tar, tmp_path / "dest")
    assert files == [(tmp_path / "dest" / GOOD[0]["name"]).resolve()]
    assert files[0].read_bytes() == GOOD[1]


def test_safe_extract_of_a_non_tar_is_a_cutout_error(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 10)
    with pytest.raises(CutoutError, match="cannot open cutout tar"):
        safe_extract(junk, tmp_path / "dest")


def test_safe_extract_refuses_a_file_named_like_dest_itself(tmp_path):
    tar = make_tar(tmp_path / "t.tar", [({"name": "."}, b"x")])
    with pytest.raises(CutoutError, match="resolves outside"):
        safe_extract(tar, tmp_path / "dest")
