"""Who may answer for a domain. Pure: a snapshot of the claims in, a decision out.

The rules (docs/router.md says the same for users):

- A domain belongs to one app. ``domains:add`` refuses a name another app has, as a custom
  domain or as its ``APP.GLOBALDOMAIN``, and the error names the owner.
- ``localhost`` (and ``*.localhost``, which resolves to the machine itself) and IP literals
  (a name whose last label is all digits, such as ``127.0.0.1`` or ``10.1``) are refused: the
  router would answer bare-IP requests with the app.
- ``shipmate.GLOBALDOMAIN`` is reserved for Shipmate's dashboard, and so is the app name
  ``shipmate``.
- Whichever comes second loses: ``apps:create B`` is refused when ``B.GLOBALDOMAIN`` is a
  custom domain of another app, ``domains:add A B.GLOBALDOMAIN`` when app B exists, and
  ``domains:set-global`` when it would give an app a name another app has.

The syntax of a name is checked by :func:`shipmate.router.keys.validate_domain` (the one rule
the router applies too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from shipmate.errors import ConflictError, ValidationError
from shipmate.router.keys import validate_domain

#: Reserved for the dashboard: ``shipmate.GLOBALDOMAIN`` and the app of that name.
DASHBOARD = "shipmate"


@dataclasses.dataclass(frozen=True)
class Claims:
    """Every name taken, read in one snapshot: the apps, their custom domains, the global
    domain ('' when unset)."""

    apps: frozenset[str]
    custom: Mapping[str, tuple[str, ...]]  # app -> its custom domains
    global_domain: str = ""

    def owner(self, domain: str) -> str | None:
        """The app that answers for ``domain`` today, if any."""
        for app, domains in sorted(self.custom.items()):
            if domain in domains:
                return app
        if self.global_domain and domain.endswith("." + self.global_domain):
            name = domain[: -len(self.global_domain) - 1]
            if name in self.apps:
                return name
        return None


def check_new_domain(app: str, domain: str, claims: Claims) -> str:
    """``domain`` in normal form if ``app`` may add it, else raise saying why (and who has it)."""
    name = validate_domain(domain)
    _check_not_local(name)
    if claims.global_domain and name == f"{DASHBOARD}.{claims.global_domain}":
        raise ConflictError(f"{name} is reserved for the Shipmate dashboard",
                            hint="use another name for the app")
    owner = claims.owner(name)
    if owner is not None and owner != app:
        raise ConflictError(f"{name} already belongs to app {owner}",
                            hint=f"remove it there first: domains:remove {owner} {name}")
    return name


def check_new_app(app: str, claims: Claims) -> None:
    """Refuse an app name whose ``APP.GLOBALDOMAIN`` another app already answers for."""
    if app == DASHBOARD:
        raise ConflictError(f"the app name {DASHBOARD!r} is reserved for the Shipmate dashboard",
                            hint="choose another name")
    if not claims.global_domain:
        return
    derived = f"{app}.{claims.global_domain}"
    owner = next((a for a, ds in sorted(claims.custom.items()) if derived in ds), None)
    if owner is not None:
        raise ConflictError(f"{derived} is a domain of app {owner}, so {app} cannot be created",
                            hint=f"choose another name, or domains:remove {owner} {derived}")


def check_new_global(domain: str, claims: Claims) -> str:
    """``domain`` in normal form if it can become the global domain: no app's
    ``APP.DOMAIN`` may be another app's custom domain."""
    name = validate_domain(domain)
    _check_not_local(name)
    for app in sorted(claims.apps):
        derived = f"{app}.{name}"
        owner = next((a for a, ds in sorted(claims.custom.items())
                      if derived in ds and a != app), None)
        if owner is not None:
            raise ConflictError(f"{derived} would belong to app {app}, but it is a domain of "
                                f"app {owner}", hint=f"domains:remove {owner} {derived} first")
    return name


def check_removals(domains: Iterable[str]) -> set[str]:
    """Names to remove, in normal form (any syntactically valid name may be removed)."""
    return {validate_domain(d) for d in domains}


def _check_not_local(name: str) -> None:
    if name == "localhost" or name.endswith(".localhost"):
        raise ValidationError(f"{name} names this machine, not an app",
                              hint="use a domain such as app.example.com")
    if name.rsplit(".", 1)[-1].isdigit():
        raise ValidationError(f"{name} is an IP address, not a domain",
                              hint="apps answer on names; without a global domain each app "
                                   "gets a port of its own (see `urls APP`)")


def merged(current: Iterable[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """An app's domains after ``domains:add`` / ``domains:remove``: sorted, unique."""
    return sorted((set(current) | set(add)) - set(remove))


def claims_from(apps: Iterable[str], custom: Mapping[str, Iterable[str]],
                global_domain: str) -> Claims:
    """Build :class:`Claims` from plain collections."""
    return Claims(frozenset(apps), {a: tuple(ds) for a, ds in custom.items()}, global_domain)
