"""Name rules, checked before a name reaches a path, a shell or a container."""

from __future__ import annotations

import re

from shipmate.errors import ValidationError

APP_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# dockerd refuses one-character names ("Invalid container name (a)").
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MAX_APP_NAME = 63


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name (Dokku's rule), else raise ValidationError."""
    if (
        not APP_NAME.fullmatch(name)
        or len(name) > MAX_APP_NAME
        or ".." in name
        or name.endswith((".", "-"))
    ):
        raise ValidationError(
            "App name must begin with lowercase alphanumeric character, and cannot include "
            "uppercase characters, colons, or underscores",
            hint=f"got {name!r}; use lowercase letters, digits, '.' and '-'",
        )
    return name


def validate_container_name(name: str) -> str:
    """Return ``name`` if Docker would accept it as a container name, else raise."""
    if len(name) < 2:
        raise ValidationError(f"invalid container name {name!r}: too short",
                              hint="Docker needs at least 2 characters")
    if not CONTAINER_NAME.fullmatch(name) or len(name) > 128:
        raise ValidationError(
            f"invalid container name {name!r}",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    return name
