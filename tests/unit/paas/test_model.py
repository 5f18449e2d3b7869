import pytest

from shipmate.errors import ValidationError
from shipmate.paas.model import (
    Release,
    parse_assignments,
    parse_procfile,
    parse_release_label,
    parse_scale,
)


def test_assignments_keep_values_exactly() -> None:
    got = parse_assignments(["A=1", "B=with spaces", "C=a=b=c", "D=", 'E="quoted"', "F=l1\nl2"])
    assert got == {"A": "1", "B": "with spaces", "C": "a=b=c", "D": "", "E": '"quoted"',
                   "F": "l1\nl2"}


@pytest.mark.parametrize("pair", ["NOEQUALS", "1A=x", "A-B=x", "=x", "PORT=1", "DYNO=x"])
def test_bad_assignments_refused(pair: str) -> None:
    with pytest.raises(ValidationError):
        parse_assignments([pair])


def test_scale_pairs() -> None:
    assert parse_scale(["web=3", "worker=0"]) == {"web": 3, "worker": 0}
    for bad in ["web", "web=-1", "Web=1", "web=x", "web=51"]:
        with pytest.raises(ValidationError):
            parse_scale([bad])


def test_procfile() -> None:
    text = ("# comment\nweb: node server.js\n\nworker:  node worker.js --fast\n"
            "release: node migrate\n")
    assert parse_procfile(text) == {"web": "node server.js", "worker": "node worker.js --fast",
                                    "release": "node migrate"}
    with pytest.raises(ValidationError, match="Procfile line 1"):
        parse_procfile("just a command")


def test_release_round_trip_and_label() -> None:
    r = Release(3, "sha256:abc", {"A": "b"}, {"web": 1}, {"web": ""}, "f" * 40, 1.0, "Deploy")
    assert Release.from_json(r.to_json()) == r
    assert r.label == "v3"
    assert parse_release_label("v3") == 3 and parse_release_label("12") == 12
    with pytest.raises(ValidationError):
        parse_release_label("v0")
