#!/usr/bin/env bash
# The broker of deploy/containers/kafka/Containerfile, configured as apache/kafka is: every
# KAFKA_<NAME> variable (other than the JVM's: KAFKA_HEAP_OPTS, KAFKA_OPTS, ...) is the property
# <name> lower-cased, '_' -> '.', '__' -> '_', '___' -> '-'; CLUSTER_ID formats the storage on the
# first start. The JVM flags are deploy/kafka/kafka.sh's.
set -euo pipefail
config=/opt/kafka/config/server.properties
{
  echo "# written by /opt/kafka/bin/entrypoint.sh from the container's KAFKA_* variables"
  for var in $(compgen -e | sort); do
    case "$var" in
      KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|KAFKA_DEBUG) ;;
      KAFKA_*)
        name="${var#KAFKA_}"; name="${name,,}"
        name="${name//___/-}"; name="${name//__/@}"; name="${name//_/.}"; name="${name//@/_}"
        echo "$name=${!var}" ;;
    esac
  done
} > "$config"
grep -q '^process.roles=' "$config" || { echo "entrypoint.sh: KAFKA_PROCESS_ROLES is not set" >&2; exit 2; }
cp=(-cp "/opt/kafka/libs/*")
logging=(-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties)
data="$(sed -n 's/^log.dirs=//p' "$config")"; data="${data:-/tmp/kraft-combined-logs}"
if [[ ! -f "${data%%,*}/meta.properties" ]]; then
  [[ -n "${CLUSTER_ID:-}" ]] || { echo "entrypoint.sh: CLUSTER_ID is needed to format ${data%%,*}" >&2; exit 2; }
  java -Xmx256m "${logging[@]}" "${cp[@]}" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$config" --ignore-formatted
fi
# shellcheck disable=SC2206 # the heap options are deliberately split into words
heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m})
# shellcheck disable=SC2086
exec java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:ActiveProcessorCount=2 \
  -XX:CICompilerCount=2 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -Djava.awt.headless=true \
  "${logging[@]}" ${KAFKA_OPTS:-} "${cp[@]}" kafka.Kafka "$config"
