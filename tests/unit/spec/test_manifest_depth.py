import pytest

from shipmate.errors import ValidationError
from shipmate.spec.manifest import parse_manifest


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000, "{" * 100000,
    "containers:\n" + "".join("  " * i + "a:\n" for i in range(1, 3000)),
])
def test_deeply_nested_yaml_is_refused_naming_the_line(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifest(text, "m.yaml", read_file=lambda path: "")
    assert "nested more than 64 levels deep" in info.value.message
    assert info.value.message.startswith("m.yaml:")
