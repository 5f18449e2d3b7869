"""One app's routes must not stop the router for all: when nginx refuses a config, find the
apps whose routes it refuses on their own, leave them out, and route every other app.

Each app's route is tested alone (``nginx -t`` on a config holding only that route); the
verdict is kept for as long as the route stays the same, so a refused app costs one test per
change, not one per pass. Without a refusal nothing is tested at all. An app left out is
reported (:attr:`Isolation.excluded`, the daemon log, ``domains:report`` and ``ps:report``)
and tried again as soon as its route changes (a domain removed, a new release).

A config refused for a reason no single app explains (a listen port another program took)
is not helped by leaving apps out: the previous config keeps serving, as before.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Protocol

from shipmate.errors import ValidationError
from shipmate.router.render import RenderOptions, render
from shipmate.router.routes import Route, RouterState

log = logging.getLogger(__name__)


class Checker(Protocol):
    """What isolation needs of the proxy: its options and a dry-run test of a config."""

    http_port: int
    render_options: RenderOptions

    async def check(self, config_text: str) -> str | None:
        """nginx's complaint about ``config_text``, or None when it passes."""
        ...


class Isolation:
    """The verdicts on single routes and the apps left out because of them."""

    def __init__(self) -> None:
        self._verdicts: dict[Route, str | None] = {}
        self._excluded: dict[str, str] = {}

    @property
    def excluded(self) -> Mapping[str, str]:
        """App -> why nginx refuses its routes (empty when every app is routed)."""
        return dict(self._excluded)

    def admitted(self, state: RouterState) -> RouterState:
        """``state`` without the routes found refused. Verdicts on routes no longer in the
        state are forgotten; a change in the set of apps left out is logged."""
        self._verdicts = {r: v for r, v in self._verdicts.items() if r in state.routes}
        excluded = {r.app: v for r, v in self._verdicts.items() if v is not None}
        for app, why in sorted(excluded.items()):
            if self._excluded.get(app) != why:
                log.error("router: left out the routes of app %s, which nginx refuses: %s",
                          app, why)
        for app in sorted(set(self._excluded) - set(excluded)):
            log.warning("router: routing app %s again", app)
        self._excluded = excluded
        kept = tuple(r for r in state.routes if self._verdicts.get(r) is None)
        return dataclasses.replace(state, routes=kept)

    async def examine(self, state: RouterState, proxy: Checker) -> bool:
        """Test every route of ``state`` not judged yet on its own. True when one was
        refused (so a config without it is worth trying)."""
        found = False
        for route in state.routes:
            if route in self._verdicts:
                continue
            try:
                text = render(RouterState(state.http_port, (route,)), proxy.render_options)
                verdict = await proxy.check(text)
            except ValidationError as exc:  # a name the renderer itself refuses
                verdict = exc.message
            self._verdicts[route] = verdict
            found = found or verdict is not None
        return found
