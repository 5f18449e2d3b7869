"""Which machines to ask for an image, where, and who may ask (pure)."""

from __future__ import annotations

import pytest

from shipmate.daemon import image_peers as peers
from shipmate.errors import ConfigError, ValidationError
from shipmate.paas.units import instance_units

IMAGE_ID = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref", [IMAGE_ID, "shipmate/app-web:0123abcd", "busybox"])
def test_valid_refs(ref: str) -> None:
    assert peers.validate_ref(ref) == ref


@pytest.mark.parametrize("ref", ["", "sha256:xyz", "../etc", "a/../b", "/abs", "-x",
                                 "Upper:tag", "a b", "x:tag;id"])
def test_invalid_refs_are_refused(ref: str) -> None:
    with pytest.raises(ValidationError):
        peers.validate_ref(ref)


def test_client_allowlist() -> None:
    nets = peers.parse_networks("172.30.0.0/24, 127.0.0.0/8")
    assert peers.client_allowed("172.30.0.12", nets)
    assert peers.client_allowed("::ffff:172.30.0.13", nets)
    assert peers.client_allowed("127.0.0.1", nets)
    assert not peers.client_allowed("172.30.1.12", nets)
    assert not peers.client_allowed("10.0.0.1", nets)
    assert not peers.client_allowed(None, nets)
    assert not peers.client_allowed("not-an-ip", nets)
    assert not peers.client_allowed("127.0.0.1", peers.parse_networks(""))


def test_bad_networks_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        peers.parse_networks("172.30.0.0/24,nonsense")


def test_sources_hint_first_never_self_nor_addressless() -> None:
    machines = {"node-1": "10.0.0.11", "node-2": "10.0.0.12", "node-3": "10.0.0.13",
                "node-4": ""}
    assert peers.sources("node-3", machines, "node-2") == [
        ("node-3", "10.0.0.13"), ("node-1", "10.0.0.11")]
    assert peers.sources("", machines, "node-1") == [
        ("node-2", "10.0.0.12"), ("node-3", "10.0.0.13")]
    assert peers.sources("node-9", machines, "node-1")[0][0] == "node-2"  # unknown hint


def test_image_url_quotes_the_ref() -> None:
    assert peers.image_url("172.30.0.11", 7787, IMAGE_ID) == \
        f"http://172.30.0.11:7787/v1/images/sha256%3A{'ab' * 32}"
    assert peers.image_url("::1", 7787, "a/b:c") == "http://[::1]:7787/v1/images/a%2Fb%3Ac"


def test_only_app_images_are_servable() -> None:
    assert peers.servable({"shipmate.app": "web"})
    assert not peers.servable({})
    assert not peers.servable({"shipmate.app": ""})


def test_paas_units_name_their_image_source() -> None:
    units = instance_units("web", "v1-abcd", IMAGE_ID, {"web": "npm start"}, {"web": 1}, {},
                           "rev", image_source="node-1")
    assert "Label=shipmate.image-source=node-1\n" in units[0].text
    plain = instance_units("web", "v1-abcd", IMAGE_ID, {"web": "npm start"}, {"web": 1}, {},
                           "rev")
    assert "image-source" not in plain[0].text
