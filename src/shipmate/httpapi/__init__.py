"""HTTP plumbing shared by the daemon's API and the subsystems that add routes to it, and the
small client the CLI talks to the daemon with. It sits below every subsystem, so that
``paas``, ``agent`` and the CLI need not import ``daemon`` (which wires them) to serve or to
call the API. :mod:`.server` needs aiohttp; :mod:`.client` needs only the standard library."""
