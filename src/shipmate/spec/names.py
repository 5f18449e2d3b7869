"""Name rules, checked before a name reaches a path, a shell or a container."""

from __future__ import annotations

import re

from shipmate.errors import ValidationError

APP_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# dockerd refuses one-character names ("Invalid container name (a)").
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MAX_APP_NAME = 63
_DOMAIN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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


def validate_domain(name: str) -> str:
    """Return ``name`` lower-cased if it is a valid DNS name, else raise ValidationError.

    The one domain rule, for the API (``domains:add``, ``domains:set-global``) and the router
    alike. It is the gate in front of the nginx config: anything else (``;``, ``{``, quotes,
    spaces, newlines, ``$``) could change the config's meaning. Wildcards (``*.example.com``)
    are refused: a wildcard would answer for names other apps may claim later."""
    low = name.lower()
    if low.startswith("*"):
        raise ValidationError(
            f"wildcard domains are not supported: {name!r}",
            hint="add each name the app answers on, e.g. www.example.com (see docs/router.md)",
        )
    labels = low.split(".")
    if len(low) > 253 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(
            f"invalid domain {name!r}",
            hint="use letters, digits, '-' and '.' (labels of 1-63 characters), e.g. a.example.com",
        )
    return low
