#!/usr/bin/env bash
# Local Apache Kafka (KRaft mode) for development, tests and CI, run from jars resolved with Maven.
#
#   deploy/kafka/kafka.sh fetch            resolve the latest Kafka 4.x broker jars into the cache
#   deploy/kafka/kafka.sh up|down|status   single-node broker on 127.0.0.1:$KAFKA_PORT (default 9092)
#   deploy/kafka/kafka.sh wipe             stop the single node and delete its data
#   deploy/kafka/kafka.sh cluster-up|cluster-down|cluster-status|cluster-wipe
#                                          three KRaft nodes (RF 3, min.insync.replicas 2)
#   deploy/kafka/kafka.sh cluster-kill N   kill -9 node N (1..3)
#   deploy/kafka/kafka.sh cluster-start N  bring node N back
#   deploy/kafka/kafka.sh proxy-map        per node: its id, the proxy address it advertises on
#                                          PROXIED, and the PROXIED listener the proxy forwards to
#   deploy/kafka/kafka.sh bootstrap [cluster|proxied]  print the bootstrap servers (proxied: the
#                                          cluster's PROXIED listeners, reached through proxies on
#                                          +30..+32 that a network-fault test starts, e.g. Toxiproxy)
#   deploy/kafka/kafka.sh secure-up|secure-down|secure-status|secure-wipe
#                                          single node on 127.0.0.1:$KAFKA_SECURE_PORT (9192): SASL_SSL
#                                          (SCRAM-SHA-512 over TLS, a CA and certificate made here),
#                                          users admin (super user) and leadscore, ACLs enforced
#   deploy/kafka/kafka.sh secure-env [user]    the LEADSCORE_* settings to connect as that user
#   deploy/kafka/kafka.sh ports-free|cluster-ports-free   exit 0 if the ports are free (or ours)
#   deploy/kafka/kafka.sh free-port|free-cluster-port     print a KAFKA_PORT / KAFKA_CLUSTER_PORT
#                                          whose ports are all free
#
# Before starting, every port a broker will listen on is checked; a taken one stops the start
# with one line naming the port, the process holding it and a free KAFKA_PORT to use instead.
# A broker started on other ports records them, so status, bootstrap and down find it.
#
# Environment (all optional):
#   KAFKA_PORT=9092            single-node client port; its controller listens on KAFKA_PORT+1
#   KAFKA_CLUSTER_PORT=19092   first client port of the cluster (nodes use +0..+2, controllers +10..+12,
#                              a second listener PROXIED +20..+22 that advertises +30..+32, where a
#                              network-fault test puts a proxy in front of it)
#   KAFKA_VERSION=4.4.0        pin a version instead of resolving the latest 4.x
#   KAFKA_HEAP_OPTS            JVM heap for the single node (default -Xms256m -Xmx768m)
#   LEADSCORE_CACHE_DIR        where jars are cached (default <repo>/.cache)
#   LEADSCORE_VAR_DIR          where broker data and logs live (default <repo>/var)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_dir="${LEADSCORE_CACHE_DIR:-$repo/.cache}/kafka"
var_dir="${LEADSCORE_VAR_DIR:-$repo/var}/kafka"
version_range="[4.0.0,5.0.0)"
slf4j_version="2.0.17"
log4j_version="2.25.2"
# A broker of this checkout started on other ports recorded them: use those unless told otherwise.
recorded_port() { [[ -f "$1/port" && -f "$1/kafka.pid" ]] && kill -0 "$(cat "$1/kafka.pid")" 2>/dev/null && cat "$1/port"; }
single_port="${KAFKA_PORT:-$(recorded_port "$var_dir/single" || echo 9092)}"
recorded_cluster_port() {
  local n
  for n in 1 2 3; do
    [[ -f "$var_dir/cluster/node-$n/kafka.pid" ]] && kill -0 "$(cat "$var_dir/cluster/node-$n/kafka.pid")" 2>/dev/null \
      && [[ -f "$var_dir/cluster/port" ]] && { cat "$var_dir/cluster/port"; return 0; }
  done
  return 1
}
cluster_port="${KAFKA_CLUSTER_PORT:-$(recorded_cluster_port || echo 19092)}"
start_timeout_s="${KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

require_tools() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is required: install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)."
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Java 17 or newer is required, found '${major:-unknown}': install a JDK 17+."
}

require_maven() {
  command -v mvn >/dev/null 2>&1 || die "Maven is required to fetch the Kafka broker jars: install Maven 3.6+ (e.g. apt-get install maven)."
}

# Resolve the broker jars once; later calls reuse the cache without touching Maven.
fetch() {
  require_tools
  if [[ -f "$cache_dir/current/VERSION" && -d "$cache_dir/current/libs" ]]; then
    if [[ -z "${KAFKA_VERSION:-}" || "$(cat "$cache_dir/current/VERSION")" == "$KAFKA_VERSION" ]]; then
      return 0
    fi
  fi
  require_maven
  local want="${KAFKA_VERSION:-$version_range}" work
  work="$cache_dir/resolve.$$"
  rm -rf "$work" && mkdir -p "$work/libs"
  sed -e "s/@KAFKA_VERSION@/$want/" -e "s/@SLF4J_VERSION@/$slf4j_version/" \
      -e "s/@LOG4J_VERSION@/$log4j_version/" "$here/pom.xml.in" > "$work/pom.xml"
  say "resolving Apache Kafka $want with Maven (first run only)..."
  if ! mvn -q -B -f "$work/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "Maven could not resolve the Kafka broker (log above)."
  fi
  local jar resolved
  jar="$(ls "$work/libs" | grep -E '^kafka_2\.13-[0-9.]+\.jar$' | head -n 1)"
  [[ -n "$jar" ]] || die "Maven finished but no kafka_2.13 jar was copied."
  resolved="${jar#kafka_2.13-}"; resolved="${resolved%.jar}"
  echo "$resolved" > "$work/VERSION"
  rm -rf "$cache_dir/$resolved" && mv "$work" "$cache_dir/$resolved"
  ln -sfn "$resolved" "$cache_dir/current"
  say "Apache Kafka $resolved cached in $cache_dir/$resolved"
}

classpath() { echo "$cache_dir/current/libs/*"; }

# java_cmd <heap opts> <log dir> <main class> args...: fills JAVA_CMD with the full java command line.
java_cmd() {
  local heap="$1" logs="$2"; shift 2
  # shellcheck disable=SC2206 # the heap options are deliberately split into words
  JAVA_CMD=(java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:ActiveProcessorCount=2
    -XX:CICompilerCount=2 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1
    -Djava.awt.headless=true -Dkafka.logs.dir="$logs"
    -Dlog4j2.configurationFile="$here/log4j2.properties"
    -cp "$(classpath)" "$@")
}

kafka_java() { java_cmd "$@"; "${JAVA_CMD[@]}"; }

# write_config <dir> <node id> <client port> <controller port> <voters> <rf>
write_config() {
  local dir="$1" id="$2" port="$3" cport="$4" voters="$5" rf="$6" min_isr
  min_isr=$(( rf >= 3 ? 2 : 1 ))
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<EOF
# Generated by deploy/kafka/kafka.sh: local KRaft node for development and tests.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
log.retention.hours=168
log.segment.bytes=67108864
EOF
}

format_storage() {
  # format_storage <dir> <cluster id> [StorageTool options, e.g. --add-scram ...]
  local dir="$1" cluster_id="$2"; shift 2
  [[ -f "$dir/data/meta.properties" ]] && return 0
  kafka_java "-Xmx256m" "$dir/logs" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$dir/server.properties" --ignore-formatted "$@" >"$dir/logs/format.log" 2>&1 \
    || { cat "$dir/logs/format.log" >&2; die "formatting KRaft storage in $dir failed."; }
}

cluster_id_for() {
  local file="$1"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$(dirname "$file")"
    kafka_java "-Xmx128m" "$(dirname "$file")" kafka.tools.StorageTool random-uuid | tail -n 1 > "$file"
  fi
  cat "$file"
}

is_running() { local pid_file="$1/kafka.pid"; [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

# Sends an ApiVersions request and expects a well-formed answer: proof that the broker serves clients.
api_versions_ok() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
    client = b"leadscore-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(4)
    size = struct.unpack(">i", head)[0]
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    corr, err = struct.unpack(">ih", data[:6])
    sys.exit(0 if corr == 7 and err == 0 else 1)
PY
}

wait_ready() {
  local dir="$1" port="$2" deadline=$(( SECONDS + start_timeout_s ))
  while (( SECONDS < deadline )); do
    is_running "$dir" || { tail -n 40 "$dir/logs/stdout.log" "$dir/logs/server.log" 2>/dev/null >&2; die "the broker in $dir exited during start-up (logs above)."; }
    if grep -q "Kafka Server started" "$dir/logs/server.log" 2>/dev/null && api_versions_ok "$port"; then
      return 0
    fi
    sleep 0.5
  done
  die "the broker in $dir did not accept requests within ${start_timeout_s}s (see $dir/logs/server.log)."
}

start_node() {
  # start_node <dir> <port> <heap>; returns once started in the background (no readiness wait)
  local dir="$1" port="$2" heap="$3"
  is_running "$dir" && return 0
  : > "$dir/logs/server.log"
  java_cmd "$heap" "$dir/logs" kafka.Kafka "$dir/server.properties"
  nohup "${JAVA_CMD[@]}" >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! > "$dir/kafka.pid"
}

stop_node() {
  local dir="$1" pid
  is_running "$dir" || { rm -f "$dir/kafka.pid"; return 0; }
  pid="$(cat "$dir/kafka.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$dir/kafka.pid"
}

single_dir="$var_dir/single"

# shellcheck source=../lib/ports.sh
source "$here/../lib/ports.sh"  # port_in_use, port_owner

single_ports() { echo "$single_port" $(( single_port + 1 )); }
cluster_ports() { local n; for n in 1 2 3; do echo "$(node_port $n)" "$(node_cport $n)" "$(node_pport $n)" "$(node_xport $n)"; done; }

# free_base <first> <step> <offsets...>: the first base from <first> on whose base+offset ports
# are all free.
free_base() {
  local base="$1" step="$2" offset busy; shift 2
  for _ in $(seq 1 200); do
    busy=0
    for offset in "$@"; do port_in_use $(( base + offset )) && { busy=1; break; }; done
    (( busy == 0 )) && { echo "$base"; return 0; }
    base=$(( base + step ))
  done
  die "no free ports found from $1 on."
}
free_single() { free_base 29092 2 0 1; }
free_cluster() { free_base 39092 40 0 1 2 10 11 12 20 21 22 30 31 32; }

# check_ports <variable> <suggest command> <ports...>: stop with one line if one is taken.
check_ports() {
  local variable="$1" suggest="$2" port; shift 2
  for port in "$@"; do
    if port_in_use "$port"; then
      die "127.0.0.1:$port is taken by $(port_owner "$port"): stop it, or use other ports, e.g. $variable=$($suggest)."
    fi
  done
}

single_up() {
  local cport=$(( single_port + 1 ))
  if is_running "$single_dir"; then
    wait_ready "$single_dir" "$single_port"
    say "broker already running on 127.0.0.1:$single_port"; return 0
  fi
  # shellcheck disable=SC2046
  check_ports KAFKA_PORT free_single $(single_ports)
  fetch
  write_config "$single_dir" 1 "$single_port" "$cport" "1@127.0.0.1:$cport" 1
  echo "$single_port" > "$single_dir/port"
  format_storage "$single_dir" "$(cluster_id_for "$single_dir/cluster.id")"
  start_node "$single_dir" "$single_port" "${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  wait_ready "$single_dir" "$single_port"
  say "Apache Kafka $(cat "$cache_dir/current/VERSION") ready on 127.0.0.1:$single_port (logs: $single_dir/logs/server.log)"
}

node_dir() { echo "$var_dir/cluster/node-$1"; }
node_port() { echo $(( cluster_port + $1 - 1 )); }
node_cport() { echo $(( cluster_port + 9 + $1 )); }
node_pport() { echo $(( cluster_port + 19 + $1 )); }  # the PROXIED listener
node_xport() { echo $(( cluster_port + 29 + $1 )); }  # what it advertises: the proxy in front of it
cluster_voters() { echo "1@127.0.0.1:$(node_cport 1),2@127.0.0.1:$(node_cport 2),3@127.0.0.1:$(node_cport 3)"; }
check_node() { [[ "$1" =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')."; }

cluster_prepare() {
  fetch
  local cid n
  cid="$(cluster_id_for "$var_dir/cluster/cluster.id")"
  for n in 1 2 3; do
    write_config "$(node_dir $n)" "$n" "$(node_port $n)" "$(node_cport $n)" "$(cluster_voters)" 3
    # A second client listener for network-fault tests: clients that bootstrap through the proxies
    # (+30..+32) are told the proxies' addresses, so all their traffic crosses them; everything
    # else (inter-broker, the tests' own producers and checks) stays on PLAINTEXT.
    sed -i -e "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$(node_port $n),PROXIED://127.0.0.1:$(node_pport $n),CONTROLLER://127.0.0.1:$(node_cport $n)|" \
      -e "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port $n),PROXIED://127.0.0.1:$(node_xport $n)|" \
      -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT|" \
      "$(node_dir $n)/server.properties"
    format_storage "$(node_dir $n)" "$cid"
  done
}

cluster_running() { local n; for n in 1 2 3; do is_running "$(node_dir $n)" && return 0; done; return 1; }

cluster_up() {
  # shellcheck disable=SC2046
  cluster_running || check_ports KAFKA_CLUSTER_PORT free_cluster $(cluster_ports)
  cluster_prepare
  echo "$cluster_port" > "$var_dir/cluster/port"
  local n
  for n in 1 2 3; do start_node "$(node_dir $n)" "$(node_port $n)" "-Xms192m -Xmx512m"; done
  for n in 1 2 3; do wait_ready "$(node_dir $n)" "$(node_port $n)"; done
  say "three-node cluster ready on $(bootstrap cluster)"
}

cluster_start_one() {
  check_node "${1:-}"
  cluster_prepare
  start_node "$(node_dir "$1")" "$(node_port "$1")" "-Xms192m -Xmx512m"
  wait_ready "$(node_dir "$1")" "$(node_port "$1")"
  say "node $1 is back on 127.0.0.1:$(node_port "$1")"
}

cluster_kill() {
  check_node "${1:-}"
  local dir; dir="$(node_dir "$1")"
  is_running "$dir" || die "node $1 is not running."
  kill -KILL "$(cat "$dir/kafka.pid")"
  while kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; do sleep 0.1; done
  rm -f "$dir/kafka.pid"
  say "node $1 killed with SIGKILL"
}

status_line() {
  local name="$1" dir="$2" port="$3"
  if is_running "$dir" && api_versions_ok "$port"; then echo "$name: up (pid $(cat "$dir/kafka.pid"), 127.0.0.1:$port)"
  elif is_running "$dir"; then echo "$name: starting (pid $(cat "$dir/kafka.pid"), 127.0.0.1:$port)"
  else echo "$name: down"; fi
}

# ----- the secure single node: SASL_SSL (SCRAM-SHA-512 over TLS) with ACLs --------------------
secure_dir="$var_dir/secure"
secure_port="${KAFKA_SECURE_PORT:-$(recorded_port "$secure_dir" || echo 9192)}"
secure_ports() { echo "$secure_port" $(( secure_port + 1 )); }
free_secure() { free_base 29192 2 0 1; }

# make_tls <dir>: a CA and a certificate for 127.0.0.1 and localhost signed by it (PEM), once.
make_tls() {
  local dir="$1"
  [[ -s "$dir/ca.pem" && -s "$dir/broker.pem" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl is required to make the secure broker's certificates."
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=leadscore-dev-ca" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile broker.ext -out broker.crt 2>/dev/null
    # Kafka's PEM key store: the private key (PKCS#8, unencrypted), then the certificate chain
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
    cat broker.pk8 broker.crt ca.pem > broker.pem
    rm -f broker.csr broker.ext broker.pk8 ca.srl
    chmod 600 ca.key broker.key broker.pem
  ) || die "making the secure broker's certificates in $dir failed."
}

# secure_password <user>: the user's SCRAM password, made once (random), kept in the var dir.
secure_password() {
  local file="$secure_dir/credentials/$1"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$secure_dir/credentials"; chmod 700 "$secure_dir/credentials"
    python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$file"; chmod 600 "$file"
  fi
  cat "$file"
}

write_secure_config() {
  local dir="$secure_dir" cport=$(( secure_port + 1 )) admin
  admin="$(secure_password admin)"
  write_config "$dir" 1 "$secure_port" "$cport" "1@127.0.0.1:$cport" 1
  sed -i -e "s|^listeners=.*|listeners=SASL_SSL://127.0.0.1:$secure_port,CONTROLLER://127.0.0.1:$cport|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=SASL_SSL://127.0.0.1:$secure_port|" \
    -e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=SASL_SSL|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT|" \
    "$dir/server.properties"
  {
    echo "# SASL_SSL: SCRAM-SHA-512 over TLS for clients and between brokers; the controller"
    echo "# listener stays on 127.0.0.1 in plain text (one node: broker and controller are one process)."
    echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
    echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"
    echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin\";"
    echo "ssl.keystore.type=PEM"
    echo "ssl.keystore.location=$dir/tls/broker.pem"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$dir/tls/ca.pem"
    echo "# ACLs: nothing is allowed that an ACL does not grant; admin (and the controller link) may do all."
    echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    echo "allow.everyone.if.no.acl.found=false"
    echo "super.users=User:admin;User:ANONYMOUS"
  } >> "$dir/server.properties"
  chmod 600 "$dir/server.properties"
}

# tls_ok <port>: a TLS handshake with the broker's certificate succeeds (its listener serves).
tls_ok() {
  python3 - "$1" "$secure_dir/tls/ca.pem" <<'PY' 2>/dev/null
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as raw:
    with context.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass
PY
}

secure_up() {
  if is_running "$secure_dir"; then say "secure broker already running on 127.0.0.1:$secure_port"; return 0; fi
  # shellcheck disable=SC2046
  check_ports KAFKA_SECURE_PORT free_secure $(secure_ports)
  fetch
  make_tls "$secure_dir/tls"
  write_secure_config
  echo "$secure_port" > "$secure_dir/port"
  format_storage "$secure_dir" "$(cluster_id_for "$secure_dir/cluster.id")" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$(secure_password admin)]" \
    --add-scram "SCRAM-SHA-512=[name=leadscore,password=$(secure_password leadscore)]"
  start_node "$secure_dir" "$secure_port" "-Xms256m -Xmx512m"
  local deadline=$(( SECONDS + start_timeout_s ))
  while (( SECONDS < deadline )); do
    is_running "$secure_dir" || { tail -n 40 "$secure_dir/logs/server.log" >&2; die "the secure broker exited during start-up (logs above)."; }
    if grep -q "Kafka Server started" "$secure_dir/logs/server.log" 2>/dev/null && tls_ok "$secure_port"; then
      say "secure broker (SASL_SSL, SCRAM-SHA-512, ACLs) ready on 127.0.0.1:$secure_port; its settings: deploy/kafka/kafka.sh secure-env [admin|leadscore]"
      return 0
    fi
    sleep 0.5
  done
  die "the secure broker did not serve TLS within ${start_timeout_s}s (see $secure_dir/logs/server.log)."
}

# secure_env [user]: the settings of a worker connecting as that user (default leadscore).
secure_env() {
  local user="${1:-leadscore}"
  [[ -s "$secure_dir/credentials/$user" ]] || die "no user '$user' (users: admin, leadscore; start the broker with secure-up)."
  echo "LEADSCORE_BOOTSTRAP_SERVERS=127.0.0.1:$secure_port"
  echo "LEADSCORE_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
  echo "LEADSCORE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
  echo "LEADSCORE_KAFKA_SASL_USERNAME=$user"
  echo "LEADSCORE_KAFKA_SASL_PASSWORD=$(cat "$secure_dir/credentials/$user")"
  echo "LEADSCORE_KAFKA_SSL_CA_LOCATION=$secure_dir/tls/ca.pem"
}

bootstrap() {
  if [[ "${1:-}" == "cluster" ]]; then
    echo "127.0.0.1:$(node_port 1),127.0.0.1:$(node_port 2),127.0.0.1:$(node_port 3)"
  elif [[ "${1:-}" == "proxied" ]]; then
    echo "127.0.0.1:$(node_xport 1),127.0.0.1:$(node_xport 2),127.0.0.1:$(node_xport 3)"
  else
    echo "127.0.0.1:$single_port"
  fi
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  fetch) fetch; cat "$cache_dir/current/VERSION" ;;
  up) single_up ;;
  down) stop_node "$single_dir"; say "single-node broker stopped" ;;
  status) status_line "broker" "$single_dir" "$single_port"; is_running "$single_dir" ;;
  wipe) stop_node "$single_dir"; rm -rf "$single_dir"; say "single-node data deleted" ;;
  cluster-up) cluster_up ;;
  cluster-down) for n in 1 2 3; do stop_node "$(node_dir $n)"; done; say "cluster stopped" ;;
  cluster-status) for n in 1 2 3; do status_line "node-$n" "$(node_dir $n)" "$(node_port $n)"; done ;;
  cluster-kill) cluster_kill "${1:-}" ;;
  proxy-map) for n in 1 2 3; do echo "$n 127.0.0.1:$(node_xport $n) 127.0.0.1:$(node_pport $n)"; done ;;
  cluster-start) cluster_start_one "${1:-}" ;;
  cluster-wipe) for n in 1 2 3; do stop_node "$(node_dir $n)"; done; rm -rf "$var_dir/cluster"; say "cluster data deleted" ;;
  bootstrap) bootstrap "${1:-}" ;;
  secure-up) secure_up ;;
  secure-down) stop_node "$secure_dir"; say "secure broker stopped" ;;
  secure-status) if is_running "$secure_dir" && tls_ok "$secure_port"; then echo "secure broker: up (127.0.0.1:$secure_port)"; else echo "secure broker: down"; exit 1; fi ;;
  secure-env) secure_env "${1:-}" ;;
  secure-ports-free) is_running "$secure_dir" && exit 0
    for p in $(secure_ports); do port_in_use "$p" && exit 1; done; exit 0 ;;
  free-secure-port) free_secure ;;
  secure-wipe) stop_node "$secure_dir"; rm -rf "$secure_dir"; say "secure broker data, users and certificates deleted" ;;
  ports-free) is_running "$single_dir" && exit 0
    for p in $(single_ports); do port_in_use "$p" && exit 1; done; exit 0 ;;
  cluster-ports-free) cluster_running && exit 0
    for p in $(cluster_ports); do port_in_use "$p" && exit 1; done; exit 0 ;;
  free-port) free_single ;;
  free-cluster-port) free_cluster ;;
  help|-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (try: deploy/kafka/kafka.sh help)" ;;
esac
