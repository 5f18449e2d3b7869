"""Which builder fits a source tree, and the Dockerfile it builds with. Pure: takes the set
of file names (and a few file contents), returns text.

Detection order (first match wins): Dockerfile, Node.js (package.json), Python
(requirements.txt or pyproject.toml), static site (index.html), Procfile only (on the
image with the runtime its commands name, :func:`runtime_image`).

Generated Dockerfiles copy the dependency manifests first and install dependencies in their
own layer, so a push that changes only code reuses that layer; everything else (``ENV``,
``EXPOSE``, ``CMD``) comes before the code too, so a code-only push builds exactly one new
step, the final ``COPY`` (with Docker's classic builder every step that misses the cache,
even a metadata one, costs a container and a commit). Package registries are reached
through build arguments (``NPM_CONFIG_REGISTRY``, ``PIP_INDEX_URL``, ...) pointing at
Shipmate's package cache: ``ARG`` values are visible to ``RUN`` steps but not kept in the
image's environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from shipmate.errors import ValidationError

#: The Node.js major the ``shipmate/node:18`` image has (Debian bookworm's ``nodejs``).
NODE_MAJOR = 18
NODE_IMAGE, PYTHON_IMAGE, BASE_IMAGE = "shipmate/node:18", "shipmate/python:3.11", \
    "shipmate/base:bookworm"
# A Procfile-only app runs on the image whose runtime its commands name (first word).
_RUNTIMES = {"node": NODE_IMAGE, "nodejs": NODE_IMAGE, "npm": NODE_IMAGE, "npx": NODE_IMAGE,
             "python": PYTHON_IMAGE, "python3": PYTHON_IMAGE, "pip": PYTHON_IMAGE,
             "pip3": PYTHON_IMAGE}
CACHE_ARGS = ("NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "PIP_TRUSTED_HOST", "APT_PROXY",
              "SHIPMATE_CACHE_URL")


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """How to build: the builder's name, the Dockerfile text (None: use the app's own) and the
    default command per process type when the Procfile does not say."""

    builder: str
    dockerfile: str | None
    default_processes: Mapping[str, str]


def _args() -> str:
    return "".join(f"ARG {name}\n" for name in CACHE_ARGS)


NODE = """FROM shipmate/node:18
{args}WORKDIR /app
ENV NODE_ENV=production PORT=5000
EXPOSE 5000
CMD ["npm", "start"]
COPY package*.json npm-shrinkwrap.json* ./
RUN if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; \\
    then npm ci --omit=dev --no-audit --no-fund; \\
    else npm install --omit=dev --no-audit --no-fund; fi
COPY . .
"""

PYTHON_REQUIREMENTS = """FROM shipmate/python:3.11
{args}WORKDIR /app
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PORT=5000
EXPOSE 5000
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
"""

PYTHON_PROJECT = """FROM shipmate/python:3.11
{args}WORKDIR /app
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PORT=5000
EXPOSE 5000
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir .
"""

STATIC = """FROM shipmate/python:3.11
WORKDIR /app
ENV PORT=5000
EXPOSE 5000
COPY . .
"""

PROCFILE_ONLY = """FROM {image}
WORKDIR /app
ENV PORT=5000
EXPOSE 5000
COPY . .
"""


def detect(files: set[str], procfile: Mapping[str, str]) -> BuildPlan:
    """Pick the builder for a tree whose top-level file names are ``files``."""
    if "Dockerfile" in files:
        return BuildPlan("dockerfile", None, {})
    if "package.json" in files:
        return BuildPlan("nodejs", NODE.format(args=_args()), {"web": "npm start"})
    if "requirements.txt" in files:
        web = {} if "web" in procfile else {"web": _python_guess(files)}
        return BuildPlan("python", PYTHON_REQUIREMENTS.format(args=_args()), web)
    if "pyproject.toml" in files:
        web = {} if "web" in procfile else {"web": _python_guess(files)}
        return BuildPlan("python", PYTHON_PROJECT.format(args=_args()), web)
    if "index.html" in files:
        return BuildPlan("static", STATIC,
                         {"web": "python3 -m http.server --bind 0.0.0.0 \"$PORT\""})
    if procfile:
        return BuildPlan("procfile", PROCFILE_ONLY.format(image=runtime_image(procfile)), {})
    raise ValidationError(
        "Unable to select a builder: no Dockerfile, package.json, requirements.txt, "
        "pyproject.toml, index.html or Procfile at the top of the pushed tree",
        hint="add one of them (a Procfile with `web: COMMAND` is enough for a binary)")


def runtime_image(procfile: Mapping[str, str]) -> str:
    """The image a Procfile-only app runs on: the first runtime its commands name
    (``python3 worker.py`` -> Python, ``node server.js`` -> Node.js), web first; else the
    bare base. ``exec`` and ``VAR=value`` words before the program are skipped."""
    for proc in sorted(procfile, key=lambda p: (p != "web", p)):
        for word in procfile[proc].split():
            if word == "exec" or ("=" in word and not word.startswith("=")):
                continue
            program = word.rpartition("/")[2]
            if program in _RUNTIMES:
                return _RUNTIMES[program]
            if re.fullmatch(r"python3(\.\d+)?", program):
                return PYTHON_IMAGE
            break
    return BASE_IMAGE


def _python_guess(files: set[str]) -> str:
    for name in ("app.py", "main.py", "server.py"):
        if name in files:
            return f"python3 {name}"
    return ""


def processes(plan: BuildPlan, procfile: Mapping[str, str]) -> dict[str, str]:
    """Process type -> shell command ("" means the image's own CMD). ``release`` is a phase,
    not a process, and is left out."""
    procs = {**plan.default_processes, **procfile}
    procs.pop("release", None)
    if plan.builder == "nodejs" and procs.get("web") == "npm start":
        procs["web"] = ""  # the image's CMD already is npm start
    if not procs:
        procs = {"web": ""}
    return procs
