"""The router's store keys: names, validation, encoding (for writers) and decoding (for the
router). Pure: no I/O.

Store keys (values are UTF-8 JSON; see docs/router.md for the full contract):

- ``/shipmate/routes/global-domain`` -> ``{"domain": "apps.example.com"}``
- ``/shipmate/routes/domains/<app>`` -> ``{"domains": ["www.example.com"], "port": 10001}``
  (``port`` optional: a dedicated listen port, given to apps without a global domain)
- ``/shipmate/routes/active/<app>`` -> ``{"release": "v3"}`` (``"*"``: every release)
- ``/shipmate/endpoints/<app>/<process>/<instance>`` -> ``{"host": "127.0.0.1", "port": 49153,
  "machine": "m1", "release": "v3", "healthy": true}``, written by the agent of the machine
  that runs the instance, under its machine lease. ``"domains": [...]`` (a ``.container``
  unit's ``[X-Shipmate] Domain=``) makes ``<app>`` a route of its own, every release active.

Decoding never raises for one bad record: it is skipped and reported as a problem, so one
broken app cannot stop the router from serving the others.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from shipmate.errors import ValidationError
from shipmate.spec.names import validate_app_name
from shipmate.spec.names import validate_domain as validate_domain  # the one rule, re-exported

ROUTES_PREFIX = "/shipmate/routes/"
ENDPOINTS_PREFIX = "/shipmate/endpoints/"
GLOBAL_DOMAIN_KEY = ROUTES_PREFIX + "global-domain"
DOMAINS_PREFIX = ROUTES_PREFIX + "domains/"
ACTIVE_PREFIX = ROUTES_PREFIX + "active/"
ROUTED_PROCESS = "web"
ANY_RELEASE = "*"

_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class AppDomains:
    """The parsed value of ``/shipmate/routes/domains/<app>``."""

    domains: tuple[str, ...] = ()
    port: int | None = None


@dataclasses.dataclass(frozen=True)
class EndpointRecord:
    """The parsed value of one ``/shipmate/endpoints/...`` key."""

    app: str
    process: str
    instance: str
    host: str
    port: int
    machine: str = ""
    release: str = ""
    healthy: bool = True
    domains: tuple[str, ...] = ()  # declared by the unit itself (no app record)


# -- validation ---------------------------------------------------------------------------


def validate_port(port: object, what: str = "port") -> int:
    """Return ``port`` if it is an int in 1..65535 (bools refused), else raise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError(f"invalid {what} {port!r}", hint="use a number from 1 to 65535")
    return port


def validate_host(host: object) -> str:
    """Return ``host`` normalised if it is an IP address literal, else raise. Host names are
    refused: nginx resolves them once at load, and one that does not resolve fails the whole
    config."""
    if isinstance(host, str):
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
    raise ValidationError(f"invalid endpoint host {host!r}", hint="use an IP address")


# -- encoding (for writers: the PaaS deploy, the agent) -------------------------------------


def domains_key(app: str) -> str:
    """Key holding an app's domains and dedicated port."""
    return DOMAINS_PREFIX + validate_app_name(app)


def active_key(app: str) -> str:
    """Key holding the app's release that takes traffic."""
    return ACTIVE_PREFIX + validate_app_name(app)


def endpoint_key(app: str, process: str, instance: str) -> str:
    """Key of one instance's endpoint (written under the agent's lease)."""
    _check_instance(process)
    _check_instance(instance)
    return f"{ENDPOINTS_PREFIX}{validate_app_name(app)}/{process}/{instance}"


def encode_domains(domains: Iterable[str], port: int | None = None) -> str:
    """JSON value for :func:`domains_key` (domains validated, sorted, unique)."""
    body: dict[str, Any] = {"domains": sorted({validate_domain(d) for d in domains})}
    if port is not None:
        body["port"] = validate_port(port)
    return json.dumps(body, sort_keys=True)


def encode_global_domain(domain: str) -> str:
    """JSON value for :data:`GLOBAL_DOMAIN_KEY`."""
    return json.dumps({"domain": validate_domain(domain)})


def encode_active(release: str) -> str:
    """JSON value for :func:`active_key`."""
    return json.dumps({"release": release})


def encode_endpoint(
    host: str, port: int, *, release: str, machine: str = "", healthy: bool = True,
    domains: Iterable[str] = (),
) -> str:
    """JSON value for :func:`endpoint_key`."""
    body: dict[str, Any] = {"host": validate_host(host), "port": validate_port(port),
                            "machine": machine, "release": release, "healthy": healthy}
    names = sorted({validate_domain(d) for d in domains})
    if names:
        body["domains"] = names
    return json.dumps(body, sort_keys=True)


def _check_instance(part: str) -> str:
    if not _INSTANCE.fullmatch(part):
        raise ValidationError(f"invalid process or instance name {part!r}",
                              hint="use letters, digits, '_', '.', '@', ':' and '-'")
    return part


# -- decoding (for the router) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StoreInput:
    """Every router record found in the store, decoded. Keys of ``apps`` and ``active`` are app
    names; records that could not be decoded are described in ``problems``."""

    global_domain: str = ""
    apps: Mapping[str, AppDomains] = dataclasses.field(default_factory=dict)
    active: Mapping[str, str] = dataclasses.field(default_factory=dict)
    endpoints: tuple[EndpointRecord, ...] = ()
    problems: tuple[str, ...] = ()


class _Problems(list[str]):
    def add(self, key: str, why: str) -> None:
        self.append(f"{key}: {why}")


def decode(pairs: Iterable[tuple[str, bytes]]) -> StoreInput:
    """Decode the key/value pairs under :data:`ROUTES_PREFIX` and :data:`ENDPOINTS_PREFIX`
    (other keys are ignored)."""
    problems = _Problems()
    global_domain = ""
    apps: dict[str, AppDomains] = {}
    active: dict[str, str] = {}
    endpoints: list[EndpointRecord] = []
    for key, raw in sorted(pairs):
        try:
            value = json.loads(raw)
            if key == GLOBAL_DOMAIN_KEY:
                global_domain = _decode_global(value)
            elif key.startswith(DOMAINS_PREFIX):
                app = validate_app_name(key[len(DOMAINS_PREFIX):])
                apps[app] = _decode_domains(key, value, problems)
            elif key.startswith(ACTIVE_PREFIX):
                app = validate_app_name(key[len(ACTIVE_PREFIX):])
                active[app] = _decode_active(value)
            elif key.startswith(ENDPOINTS_PREFIX):
                endpoints.append(_decode_endpoint(key, value))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            problems.add(key, exc.message if isinstance(exc, ValidationError) else str(exc))
    return StoreInput(global_domain, apps, active, tuple(endpoints), tuple(problems))


def _field(value: object, name: str, kinds: type | tuple[type, ...], default: Any) -> Any:
    if not isinstance(value, dict):
        raise ValidationError("value is not a JSON object")
    got = value.get(name, default)
    if got is not None and not isinstance(got, kinds):
        raise ValidationError(f"field {name!r} has the wrong type: {got!r}")
    return got


def _decode_global(value: object) -> str:
    domain = _field(value, "domain", str, "")
    return validate_domain(domain) if domain else ""


def _decode_domains(key: str, value: object, problems: _Problems) -> AppDomains:
    names = _field(value, "domains", list, [])
    port = _field(value, "port", int, None)
    good: set[str] = set()
    for name in names or []:
        try:
            if not isinstance(name, str):
                raise ValidationError(f"domain {name!r} is not a string")
            good.add(validate_domain(name))
        except ValidationError as exc:  # one bad domain must not hide the app's others
            problems.add(key, exc.message)
    return AppDomains(tuple(sorted(good)), None if port is None else validate_port(port))


def _decode_active(value: object) -> str:
    release = _field(value, "release", str, "")
    if not release:
        raise ValidationError("field 'release' is missing or empty")
    return str(release)


def _decode_endpoint(key: str, value: object) -> EndpointRecord:
    parts = key[len(ENDPOINTS_PREFIX):].split("/")
    if len(parts) != 3:
        raise ValidationError("endpoint keys are /shipmate/endpoints/APP/PROCESS/INSTANCE")
    app, process, instance = parts
    return EndpointRecord(
        app=validate_app_name(app),
        process=_check_instance(process),
        instance=_check_instance(instance),
        host=validate_host(_field(value, "host", str, None)),
        port=validate_port(_field(value, "port", int, None), "endpoint port"),
        machine=str(_field(value, "machine", str, "") or ""),
        release=str(_field(value, "release", str, "") or ""),
        healthy=_field(value, "healthy", bool, True) is not False,
        domains=tuple(sorted({validate_domain(str(d))
                              for d in _field(value, "domains", list, []) or []})),
    )
