"""moto's server (SQS + DynamoDB) with DynamoDB requests handled one at a time.

`moto_server` serves requests on threads, and its DynamoDB is not safe under them:
`TransactWriteItems` checks its conditions item by item while other requests run, and a
cancelled transaction restores a copy of each table taken when it began, wiping out what other
requests wrote meanwhile. DynamoDB itself serialises transactions, and our functions rely on
that (conditional writes on a version, two functions writing the same presence item). So
DynamoDB requests take one lock here; SQS requests stay concurrent (the local runner's long
polls would otherwise block everything).

Usage: python infra/local/moto_server.py [-H 127.0.0.1] [-p PORT]
Used by the local stack (infra/local/stack.sh) and the Rust test kit (shared/testkit).
"""

import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialise_dynamodb(app):
    """Wraps a WSGI app so that DynamoDB requests (X-Amz-Target DynamoDB_*) run one at a time."""
    lock = threading.Lock()

    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                # Consume the response inside the lock (the work may be lazy), then close it
                # as a WSGI server would.
                result = app(environ, start_response)
                try:
                    return list(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
        return app(environ, start_response)

    return wrapped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # As moto_server does: moto builds some URLs with it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        serialise_dynamodb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
