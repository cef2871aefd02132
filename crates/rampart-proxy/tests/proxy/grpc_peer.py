"""A gRPC server and client on grpcio (gRPC's C core), for the proxy's gRPC tests.

    grpc_peer.py DIR server [CERT KEY]       serve on 127.0.0.1 (TLS with CERT and KEY,
                                             else plain h2c); prints "PORT <n>"
    grpc_peer.py DIR client ADDR [CA NAME]   call through ADDR (over TLS trusting CA,
                                             as server NAME, else h2c); prints one
                                             JSON object with each call's outcome

DIR is where the stubs are generated (grpc_tools.protoc) from the service below.
"""

import json
import os
import queue
import sys
import threading
import time

PROTO = """
syntax = "proto3";
package rampart.test;
message Note { string text = 1; }
service Notes {
  rpc Echo(Note) returns (Note);
  rpc Split(Note) returns (stream Note);
  rpc Join(stream Note) returns (Note);
  rpc Chat(stream Note) returns (stream Note);
  rpc Fail(Note) returns (Note);
  rpc Slow(Note) returns (Note);
}
"""


def generate(directory):
    """The generated modules (notes_pb2, notes_pb2_grpc), made once per directory."""
    if not os.path.exists(os.path.join(directory, "notes_pb2_grpc.py")):
        from grpc_tools import protoc

        with open(os.path.join(directory, "notes.proto"), "w") as f:
            f.write(PROTO)
        code = protoc.main(
            [
                "protoc",
                f"-I{directory}",
                f"--python_out={directory}",
                f"--grpc_python_out={directory}",
                os.path.join(directory, "notes.proto"),
            ]
        )
        if code != 0:
            sys.exit(f"protoc failed: {code}")
    sys.path.insert(0, directory)
    import notes_pb2
    import notes_pb2_grpc

    return notes_pb2, notes_pb2_grpc


def serve(directory, cert=None, key=None):
    import grpc
    from concurrent import futures

    pb, rpc = generate(directory)

    class Notes(rpc.NotesServicer):
        def Echo(self, request, context):
            seen = dict(context.invocation_metadata())
            return pb.Note(text=f"{request.text}|te={seen.get('te', '')}")

        def Split(self, request, context):
            for word in request.text.split():
                yield pb.Note(text=word)

        def Join(self, request_iterator, context):
            return pb.Note(text=" ".join(n.text for n in request_iterator))

        def Chat(self, request_iterator, context):
            for note in request_iterator:
                yield pb.Note(text=note.text.upper())

        def Fail(self, request, context):
            context.set_trailing_metadata((("x-detail", "kept"),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.text)

        def Slow(self, request, context):
            time.sleep(float(request.text))
            return pb.Note(text="late")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    rpc.add_NotesServicer_to_server(Notes(), server)
    if cert:
        with open(key, "rb") as k, open(cert, "rb") as c:
            credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    # Ends with its parent: stdin closes when the test drops the child.
    sys.stdin.read()
    server.stop(0)


def outcome(call):
    """The call's result, or its error as code, details and trailing metadata."""
    import grpc

    try:
        return {"ok": call()}
    except grpc.RpcError as e:
        return {
            "code": e.code().name,
            "details": e.details(),
            "trailers": {k: v for k, v in (e.trailing_metadata() or ())},
        }


def client(directory, address, ca=None, name=None):
    import grpc

    pb, rpc = generate(directory)

    def channel(authority):
        options = [("grpc.default_authority", authority)]
        if not ca:
            return grpc.insecure_channel(address, options=options)
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options.append(("grpc.ssl_target_name_override", name))
        return grpc.secure_channel(address, credentials, options=options)

    # The gateway's routes serve the authority grpc.test; no route serves unknown.test.
    stub = rpc.NotesStub(channel("grpc.test"))
    results = {}
    results["unary"] = outcome(lambda: stub.Echo(pb.Note(text="hello"), timeout=10).text)
    results["server_streaming"] = outcome(
        lambda: [n.text for n in stub.Split(pb.Note(text="one two three"), timeout=10)]
    )
    results["client_streaming"] = outcome(
        lambda: stub.Join(iter([pb.Note(text=t) for t in ["x", "y", "z"]]), timeout=10).text
    )

    def chat():
        # Each note is sent only once the answer to the one before has come back, so
        # the call passes only if both directions stream through the proxy.
        outgoing = queue.Queue()
        replies = stub.Chat(iter(outgoing.get, None), timeout=10)
        seen = []
        for word in ["ping", "pong", "done"]:
            outgoing.put(pb.Note(text=word))
            seen.append(next(replies).text)
        outgoing.put(None)
        seen.extend(n.text for n in replies)
        return seen

    results["bidi"] = outcome(chat)
    results["status"] = outcome(
        lambda: stub.Fail(pb.Note(text="bad 100% \u00e9t\u00e9"), timeout=10).text
    )
    started = time.monotonic()
    results["deadline"] = outcome(lambda: stub.Slow(pb.Note(text="5"), timeout=0.5).text)
    results["deadline"]["seconds"] = time.monotonic() - started
    for scenario in ["abort-401", "abort-403", "abort-429", "abort-503"]:
        results[scenario] = outcome(
            lambda: stub.Echo(
                pb.Note(text="refused"), timeout=10, metadata=(("x-scenario", scenario),)
            ).text
        )
    unrouted = rpc.NotesStub(channel("unknown.test"))
    results["no-route"] = outcome(lambda: unrouted.Echo(pb.Note(text="lost"), timeout=10).text)
    print(json.dumps(results), flush=True)


def main():
    directory, mode, *rest = sys.argv[1:]
    if mode == "server":
        serve(directory, *rest)
    elif mode == "client":
        client(directory, *rest)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
