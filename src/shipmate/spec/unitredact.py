"""Keeping a unit's environment values out of what ``fleet cat`` and ``fleet status`` show
(pure).

A unit's ``Environment=`` values are often secrets: ``apply --via-daemon`` and PaaS deploys
write a container's whole environment (database passwords, API keys) into its unit. They stay
in the store, where the agent reads them to run the unit; what is shown to a person is
redacted:

- :func:`redact_environment`: the unit text with every ``Environment=`` value (in
  ``[Service]`` and ``[Container]``) replaced by :data:`REDACTED`, names kept. A unit without
  one is returned as submitted, comments and all; one with them is shown in its canonical
  form (what fleet hashes), since its original lines would carry the values.
- :func:`scrub`: a message (an error, a check's result) with those values cut out, for status
  text that quotes what the engine said about the container.
"""

from __future__ import annotations

import dataclasses

from shipmate.errors import ValidationError
from shipmate.spec.unitfile import UnitFile, UnitOption, parse, serialize
from shipmate.spec.unitwords import split_words

REDACTED = "<redacted>"
#: The sections whose ``Environment=`` set a unit's environment.
SECTIONS = ("Service", "Container")
#: Values shorter than this are not cut out of messages ("1", "true", "80" would blank out
#: ordinary words and numbers), and hide nothing worth hiding.
MIN_SCRUBBED = 4


def _is_env(opt: UnitOption) -> bool:
    return opt.section in SECTIONS and opt.name == "Environment"


def _words(opt: UnitOption) -> list[str]:
    try:
        return split_words(opt.value)
    except ValidationError:
        return [opt.value]  # refused at submit; never shown as it is all the same


def environment_values(unit: UnitFile) -> list[str]:
    """Every non-empty value the unit's ``Environment=`` lines assign."""
    values = []
    for opt in filter(_is_env, unit.options):
        for word in _words(opt):
            _, sep, value = word.partition("=")
            if sep and value:
                values.append(value)
                if "%%" in value:  # what runs: the specifier escape undone
                    values.append(value.replace("%%", "%"))
    return values


def _redacted(opt: UnitOption) -> UnitOption:
    words = []
    for word in _words(opt):
        key, sep, value = word.partition("=")
        words.append(f"{key}={REDACTED}" if sep and value else word)
    return dataclasses.replace(opt, value=" ".join(words), raw=None)


def redact_environment(text: str) -> str:
    """``text`` with its ``Environment=`` values replaced by :data:`REDACTED`."""
    try:
        unit = parse(text)
    except ValidationError:
        return text  # nothing unparsable is ever stored
    if not any(_is_env(o) and environment_values(UnitFile((o,))) for o in unit.options):
        return text
    return serialize([_redacted(o) if _is_env(o) else o for o in unit.options])


def scrub(message: str, values: list[str]) -> str:
    """``message`` with every one of ``values`` (longest first) replaced by
    :data:`REDACTED`."""
    for value in sorted({v for v in values if len(v) >= MIN_SCRUBBED}, key=len, reverse=True):
        message = message.replace(value, REDACTED)
    return message
