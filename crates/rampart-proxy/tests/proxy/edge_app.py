"""A Flask (Werkzeug) app that reports what it understood of each request.

Rampart's differential edge tests (edge.rs beside this file) serve it with Hypercorn
(`hypercorn wsgi:edge_app:app`) behind a gateway and compare its reading of each
request with the route Rampart applied. The app routes by host (Werkzeug's host
matching, which lower-cases the host and drops the scheme's default port) and by path
(Werkzeug's rules on the path Hypercorn decoded), so `view` and `vhost` are the
framework's own reading, not one computed here.
"""

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

app = Flask(__name__, host_matching=True, static_folder=None)

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE"]


def report(view, vhost, status=200):
    body = jsonify(
        view=view,
        vhost=vhost,
        path=request.path,
        host=request.host,
        method=request.method,
        consumer=request.headers.get("X-Rampart-Consumer"),
        route=request.headers.get("X-Test-Route"),
        upgrade=request.headers.get("Upgrade"),
        settings=request.headers.get("HTTP2-Settings"),
        protocol=request.environ.get("SERVER_PROTOCOL"),
        body=request.get_data(as_text=True),
    )
    body.status_code = status
    return body


def add_views(host, vhost):
    def admin(rest=None, **_):
        return report("admin", vhost)

    def public(rest=None, **_):
        return report("public", vhost)

    for rule, name, view in (
        ("/admin", "admin", admin),
        ("/admin/<path:rest>", "admin-rest", admin),
        ("/", "root", public),
        ("/<path:rest>", "public", public),
    ):
        app.add_url_rule(
            rule, f"{vhost}-{name}", view, host=host, methods=METHODS, strict_slashes=False
        )


add_views("admin.test", "admin.test")
add_views("<other>", "other")


@app.errorhandler(HTTPException)
def refused(error):
    # A request no view took (a redirect, an unknown host form): still reported, with
    # no view, so that the test sees what the framework made of it.
    return report(None, None, error.code or 500)
