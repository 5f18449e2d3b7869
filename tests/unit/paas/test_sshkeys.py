import asyncssh
import pytest

from shipmate.errors import ValidationError
from shipmate.paas.sshkeys import MAX_KEY_TEXT, SshKeys, parse_public_key, validate_key_name
from shipmate.testing.store import memory_store


def _pub(algorithm: str, **kwargs: int) -> str:
    key = asyncssh.generate_private_key(algorithm, **kwargs)
    return key.export_public_key("openssh").decode()


def test_strong_keys_are_accepted() -> None:
    for text in (_pub("ssh-ed25519"), _pub("ssh-rsa", key_size=2048),
                 _pub("ecdsa-sha2-nistp256")):
        key, fingerprint = parse_public_key(text)
        assert fingerprint.startswith("SHA256:") and key.split()[0] == text.split()[0]


@pytest.mark.parametrize(("algorithm", "kwargs", "words"), [
    ("ssh-dss", {}, "DSA (ssh-dss) keys are refused"),
    ("ssh-rsa", {"key_size": 1024}, "at least 2048 bits, this one has 1024"),
])
async def test_weak_keys_are_refused_at_add(algorithm: str, kwargs: dict[str, int],
                                            words: str) -> None:
    store = await memory_store()
    try:
        with pytest.raises(ValidationError) as info:
            await SshKeys(store).add("weak", _pub(algorithm, **kwargs))
        assert words in str(info.value) and "ssh-keygen -t ed25519" in str(info.value)
        assert await SshKeys(store).list() == []
    finally:
        await store.close()


@pytest.mark.parametrize("text", ["", "x" * (MAX_KEY_TEXT + 1), "ssh-ed25519 !!!!",
                                  "ssh-ed25519 AAAA\nssh-ed25519 AAAA", "\udcff", "a\0b"])
def test_malformed_keys_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_public_key(text)
    assert len(info.value.message.splitlines()) == 1


@pytest.mark.parametrize("name", ["../apps/x", "a/b", "", "-x", "a b"])
async def test_a_name_that_is_no_key_name_is_refused_at_remove(name: str) -> None:
    store = await memory_store()
    with pytest.raises(ValidationError, match="Invalid key name"):
        await SshKeys(store).remove(name)
    with pytest.raises(ValidationError):
        validate_key_name(name)
    await store.close()
