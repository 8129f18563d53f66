# Port checks shared by deploy/kafka/kafka.sh, deploy/registry/registry.sh and
# deploy/prometheus/prometheus.sh (sourced, not run).

# port_in_use <port>: something listens on 127.0.0.1:<port> (the port cannot be bound). With
# SO_REUSEADDR, as the JVM and Go servers bind, so connections of a stopped server still in
# TIME_WAIT do not count.
port_in_use() {
  python3 - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(0)
sys.exit(1)
PY
}

# port_owner <port>: the listening process, as far as ss can tell.
port_owner() {
  local pid
  pid="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)"
  if [[ -n "$pid" ]]; then echo "pid $pid ($(ps -o args= -p "$pid" 2>/dev/null | cut -c1-60))"
  else echo "another process"; fi
}
