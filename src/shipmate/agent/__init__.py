"""The agent: runs this machine's units (``.service`` as supervised processes, ``.container``
through the engine), keeps their journals, and reports their states to the registry."""
