"""Services (Postgres, Redis) as data (pure): the kinds, a service's record, its unit.

A service ``NAME`` of kind ``postgres`` runs as the unit ``postgres-NAME.container``: the
container ``shipmate-postgres-NAME`` on its own network ``shipmate-svc-postgres-NAME`` (apps
linked to it join that network and reach it by the container's name; nothing else can),
with its data in the named volume ``shipmate-postgres-NAME-data``. The unit restarts the
container whenever it stops (``Restart=always``) and replaces it stop-first: two servers
must never share one data directory.
"""

from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import quote

from shipmate.errors import ValidationError
from shipmate.paas.units import escape_value
from shipmate.spec.labels import IMAGE_SOURCE_LABEL

SERVICE_LABEL = "shipmate.service"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of service and how it runs."""

    name: str  # postgres
    title: str  # Postgres
    versions: tuple[str, ...]  # image tags that can be made
    port: int
    env_var: str  # what a link sets: DATABASE_URL
    scheme: str  # of the URL
    data_dir: str  # where the volume is mounted
    health: str  # a shell command that succeeds once it accepts connections

    def image(self, version: str) -> str:
        """``shipmate/postgres:15``."""
        return f"shipmate/{self.name}:{version}"


POSTGRES = Kind("postgres", "Postgres", ("15",), 5432, "DATABASE_URL", "postgres",
                "/var/lib/postgresql/data",
                'pg_isready -q -h 127.0.0.1 -U postgres -d "$POSTGRES_DB"')
REDIS = Kind("redis", "Redis", ("7",), 6379, "REDIS_URL", "redis", "/data",
             'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG')
KINDS = {k.name: k for k in (POSTGRES, REDIS)}


def kind_of(name: str) -> Kind:
    """The kind called ``name``."""
    if name not in KINDS:
        raise ValidationError(f"Unknown service kind {name!r}", hint="postgres or redis")
    return KINDS[name]


def validate_service_name(name: str) -> str:
    """Dokku's service names: lower case letters, digits and ``-``, at most 40."""
    if not _NAME.fullmatch(name) or name.endswith("-"):
        raise ValidationError(f"Invalid service name {name!r}",
                              hint="use lowercase letters, digits and '-', starting with a "
                                   "letter or digit (at most 40)")
    return name


@dataclasses.dataclass(frozen=True)
class Service:
    """A service's record (its password is its config, kept in the store)."""

    kind: str
    name: str
    version: str
    password: str
    created: float
    machine: str = ""  # where it was created (its image was built there)
    exposed: int = 0  # the host port it is published on (0: none)
    destroying: bool = False  # KIND:destroy has begun: no new links

    @property
    def ref(self) -> str:
        """``postgres:db``: how an app's links name it."""
        return f"{self.kind}:{self.name}"

    @property
    def spec(self) -> Kind:
        """Its kind."""
        return KINDS[self.kind]

    @property
    def unit(self) -> str:
        """``postgres-NAME.container``."""
        return f"{self.kind}-{self.name}.container"

    @property
    def container(self) -> str:
        """The container's name, also its host name on its network."""
        return f"shipmate-{self.kind}-{self.name}"

    @property
    def network(self) -> str:
        """Its private network (made on demand by the engine)."""
        return f"shipmate-svc-{self.kind}-{self.name}"

    @property
    def volume(self) -> str:
        """The named volume holding its data."""
        return f"shipmate-{self.kind}-{self.name}-data"

    @property
    def database(self) -> str:
        """The database a Postgres service makes (dokku-postgres: the name, ``-`` as ``_``)."""
        return self.name.replace("-", "_")

    @property
    def url(self) -> str:
        """What a link sets in the app (``DATABASE_URL``, ``REDIS_URL``)."""
        secret = quote(self.password, safe="")
        host = f"{self.container}:{self.spec.port}"
        if self.kind == "redis":
            return f"redis://:{secret}@{host}"
        return f"postgres://postgres:{secret}@{host}/{self.database}"

    def to_json(self) -> str:
        """Serialised for the store."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str | bytes) -> Service:
        """Read back :meth:`to_json`."""
        return Service(**json.loads(text))


def check_port(port: int, taken: set[int]) -> int:
    """A host port a service may be exposed on: 1024-65535, not another service's."""
    if not 1024 <= port <= 65535:
        raise ValidationError(f"Invalid port {port}", hint="give a port from 1024 to 65535")
    if port in taken:
        raise ValidationError(f"Port {port} is taken by another service",
                              hint="choose another port, or leave it out to get a free one")
    return port


def _env(service: Service) -> dict[str, str]:
    if service.kind == "redis":
        return {"REDIS_PASSWORD": service.password}
    return {"POSTGRES_PASSWORD": service.password, "POSTGRES_DB": service.database}


def _exec(service: Service) -> str:
    if service.kind == "redis":  # the password from the environment, not on the command line
        return ('Exec=/bin/sh -c "exec redis-server --dir /data --appendonly yes '
                '--appendfsync everysec --protected-mode no --requirepass \\"$REDIS_PASSWORD\\""')
    return ""


def unit_text(service: Service) -> str:
    """The service's ``.container`` unit."""
    kind = service.spec
    lines = ["[Unit]", f"Description={kind.title} service {service.name}", "", "[Container]",
             f"Image={kind.image(service.version)}", f"ContainerName={service.container}",
             f"Network={service.network}", f"Volume={service.volume}:{kind.data_dir}"]
    if service.exposed:
        lines.append(f"PublishPort={service.exposed}:{kind.port}")
    if ex := _exec(service):
        lines.append(ex)
    for key, value in sorted(_env(service).items()):
        lines.append(f'Environment="{key}={escape_value(value)}"')
    lines += [f"HealthCmd={kind.health.replace('%', '%%')}", "HealthInterval=1s",
              "HealthTimeout=5s", "HealthRetries=3",
              f"Label={SERVICE_LABEL}={service.kind}:{service.name}"]
    if service.machine:  # machines that lack the image fetch it from this one
        lines.append(f"Label={IMAGE_SOURCE_LABEL}={service.machine}")
    lines += ["", "[Service]", "Restart=always", "",
              "[X-Shipmate]", "Replace=stop-first", "Wait=300s"]
    return "\n".join(lines) + "\n"
