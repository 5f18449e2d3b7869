"""The dashboard (docs/dashboard.md): server-rendered pages of the platform, live through
server-sent events, with actions behind a login. ``server`` builds the aiohttp application
and its listener; ``auth`` and ``sessions`` keep people out; ``data`` reads the store,
``views`` turns what was read into what pages show (pure), ``pages``, ``actions`` and
``live`` answer requests. The request graphs come from ``shipmate.web.httpstats`` (the
metrics' samples) and ``shipmate.web.svgchart`` (the SVG)."""
