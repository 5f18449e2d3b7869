"""Container labels that more than one subsystem reads: the PaaS sets them on the instances
it deploys; the daemon's image distribution decides by them which images it serves and where
it asks for one."""

from __future__ import annotations

APP_LABEL = "shipmate.app"
# The machine that built the image (and so has it): where another machine fetches it from.
IMAGE_SOURCE_LABEL = "shipmate.image-source"
