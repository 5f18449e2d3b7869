"""A tiny Flask app for Shipmate: answers on $PORT with the instance and revision serving it.

It runs Flask's own server (``web: python3 app.py``) and installs no SIGTERM handler: as the
container's PID 1 it would ignore ``docker stop``; Shipmate runs it under an init, so it stops
at once when an old release is retired.
"""

import os

from flask import Flask

app = Flask(__name__)
DYNO = os.environ.get("DYNO", "local")
REV = os.environ.get("GIT_REV", "unknown")[:7]


@app.get("/")
def index() -> str:
    return f"<h1>Hello from Flask</h1><p>Served by {DYNO}, revision {REV}.</p>\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
