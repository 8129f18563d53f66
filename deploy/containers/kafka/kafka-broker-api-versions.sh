#!/usr/bin/env bash
# kafka-broker-api-versions.sh --bootstrap-server HOST:PORT: exit 0 when the broker answers an
# ApiVersions request without error (what the compose healthcheck asks; the same probe as
# deploy/kafka/kafka.sh's readiness check). Nothing is printed.
set -euo pipefail
server=""
while (( $# )); do
  case "$1" in
    --bootstrap-server) server="$2"; shift 2 ;;
    --bootstrap-server=*) server="${1#*=}"; shift ;;
    *) shift ;;
  esac
done
[[ -n "$server" ]] || { echo "usage: kafka-broker-api-versions.sh --bootstrap-server HOST:PORT" >&2; exit 2; }
exec python3 - "${server%%,*}" <<'PY'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=5) as s:
    client = b"leadscore-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    corr, err = struct.unpack(">ih", data[:6])
    sys.exit(0 if corr == 7 and err == 0 else 1)
PY
