import base64
from pathlib import Path

import pytest

from shipmate.cli.inputs import MAX_INPUT, decode, read_file
from shipmate.cli.paas import decode_base64
from shipmate.errors import ValidationError


def test_text_is_decoded_and_bad_bytes_are_named_by_offset_not_shown() -> None:
    assert decode(b"[Service]\n", "the unit file") == "[Service]\n"
    with pytest.raises(ValidationError) as info:
        decode(b"[Service]\nExecStart=secret\xff\n", "the unit file")
    assert str(info.value).startswith("the unit file is not UTF-8 text (byte 26)")
    assert "secret" not in str(info.value)
    with pytest.raises(ValidationError, match="larger than"):
        decode(b"x" * (MAX_INPUT + 1), "the unit file")


def test_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        read_file(tmp_path / "nope.service", "the unit file")
    assert "No such file" in str(info.value) and "\n" not in info.value.message


def test_config_set_encoded_values_decode_or_fail_naming_the_key_only() -> None:
    assert decode_base64("K", base64.b64encode("hé".encode()).decode()) == "hé"
    for bad in ("not base64!", "QQ", base64.b64encode(b"\xff\xfe").decode()):
        with pytest.raises(ValidationError) as info:
            decode_base64("PASSWORD", bad)
        assert info.value.message == "PASSWORD: the value is not valid base64 of UTF-8 text"
