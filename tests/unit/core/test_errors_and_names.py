import pytest

from shipmate import errors
from shipmate.spec.names import validate_app_name


def test_error_round_trip_keeps_type_message_and_hint() -> None:
    err = errors.EngineUnavailableError("no engine", hint="start dockerd")
    back = errors.from_dict(err.to_dict())
    assert type(back) is errors.EngineUnavailableError
    assert back.message == "no engine" and back.hint == "start dockerd"
    assert str(back) == "no engine\nstart dockerd"


def test_unknown_error_code_becomes_root_type() -> None:
    back = errors.from_dict({"code": "weird", "message": "m"})
    assert type(back) is errors.ShipmateError


@pytest.mark.parametrize("name", ["test;id", "../x", "TestApp", "a/b", "-x", ".x", "a..b",
                                  "", "a b", "a_b", "a:b", "x" * 64, "a\nb"])
def test_bad_app_names_refused(name: str) -> None:
    with pytest.raises(errors.ValidationError, match="App name must begin with lowercase"):
        validate_app_name(name)


@pytest.mark.parametrize("name", ["a", "node-js-app", "app.example", "0day", "x" * 63])
def test_good_app_names_pass(name: str) -> None:
    assert validate_app_name(name) == name
