"""A page that counts its visits in Postgres (DATABASE_URL, set by `postgres:link`)."""

import http.server
import os
import time

import psycopg2

URL = os.environ.get("DATABASE_URL", "")


def connect():
    for _ in range(30):  # the database may still be starting
        try:
            return psycopg2.connect(URL)
        except psycopg2.OperationalError:
            time.sleep(1)
    return psycopg2.connect(URL)


def visit() -> int:
    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz "
                    "DEFAULT now())")
        cur.execute("INSERT INTO visits DEFAULT VALUES")
        cur.execute("SELECT count(*) FROM visits")
        return cur.fetchone()[0]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok\n"
        elif not URL:
            body = b"No database linked: run postgres:link NAME APP\n"
        else:
            body = f"Visits: {visit()}\nServed by {os.environ.get('DYNO', '?')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
