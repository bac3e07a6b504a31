#!/usr/bin/env bash
# TLS to both servers, and passwords from files. A private RabbitMQ + PostgreSQL pair (own
# directory and ports, stopped on exit) with a TLS listener that demands a client certificate and
# PostgreSQL with ssl=on, both using certificates of a CA made here. Checks: amqps:// with
# CA + client certificate and sslmode=verify-full move 1000 messages into rows over TLS, the
# passwords (read from files) appear in no log line, metric or status page; a wrong CA or a
# missing client certificate fails with a clear TLS error and startup_timeout_s makes it exit 1.
# The pair uses ports RMQ2PG_TEST_TLS_PORT_BASE+1..+7 (default 25671..25677).
source "$(dirname "$0")/lib.sh"
N=1000
servers="$RMQ2PG_SOURCE_DIR/scripts/servers.sh"
command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps.sh)"

# ---- certificates: a CA, the servers' certificate (localhost and 127.0.0.1), a client one,
# and an unrelated CA for the negative case.
tls="$WORK/tls"
mkdir -p "$tls"
# The servers run as their own users (when we are root): they must reach the files in $WORK.
chmod 711 "$WORK"
chmod 755 "$tls"
new_ca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=rmq2pg test $1" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$tls/$1.key" -out "$tls/$1.crt" 2>/dev/null
}
new_cert() { # NAME CN EXTENSIONS
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
        -keyout "$tls/$1.key" -out "$tls/$1.csr" 2>/dev/null
    openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 2 -extfile <(printf '%s\n' "$3") -out "$tls/$1.crt" 2>/dev/null
}
new_ca ca
new_ca other-ca
new_cert server localhost $'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
new_cert client rmq2pg-client 'extendedKeyUsage=clientAuth'
chmod 644 "$tls"/*.crt
# Each server reads its own copy of the key: PostgreSQL insists on owning it with mode 0600.
cp "$tls/server.key" "$tls/rabbit.key"
cp "$tls/server.key" "$tls/pg.key"
chmod 600 "$tls/rabbit.key" "$tls/pg.key"
if ((EUID == 0)); then
    chown rabbitmq: "$tls/rabbit.key"
    chown postgres: "$tls/pg.key"
fi
log "certificates made in $tls"

# ---- the config is validated at load: a missing certificate file names file, line and key.
cat >"$WORK/bad.yaml" <<YAML
amqp:
  urls: ["amqps://u@localhost/"]
  tls:
    ca_file: $tls/missing.crt
postgres: { url: "postgresql://u@localhost/db" }
pipelines: [{ name: p, queue: q, table: t, columns: { id: /id } }]
YAML
status=0
out=$("$RMQ2PG_BUILD_DIR/rmq2pg" --check-config --config "$WORK/bad.yaml" 2>&1) || status=$?
((status == 78)) || fail "--check-config exited $status, expected 78: $out"
grep -q "bad.yaml:4: amqp.tls.ca_file: cannot read '$tls/missing.crt'" <<<"$out" ||
    fail "no file:line error for the missing ca_file: $out"
log "missing ca_file refused at load: $(grep -m1 ca_file <<<"$out")"

# ---- the private TLS pair. Ports below 32768 (see servers.sh), apart from the shared fixture's.
base=${RMQ2PG_TEST_TLS_PORT_BASE:-25670}
tls_port=$((base + 1))
http_port=$((base + 7))
export RMQ2PG_SERVERS_DIR="$WORK/servers" RMQ2PG_TEST_AMQP_PORT=$((base + 2))
export RMQ2PG_TEST_RABBIT_DIST_PORT=$((base + 3)) RMQ2PG_TEST_EPMD_PORT=$((base + 4))
export RMQ2PG_TEST_PG_PORT=$((base + 5)) RMQ2PG_TEST_RABBIT_NODE=rmq2pg-tls@localhost
export RMQ2PG_TEST_RABBIT_EXTRA_CONF="listeners.ssl.1 = 127.0.0.1:$tls_port
ssl_options.cacertfile = $tls/ca.crt
ssl_options.certfile = $tls/server.crt
ssl_options.keyfile = $tls/rabbit.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true"
export RMQ2PG_TEST_PG_EXTRA_CONF="ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/pg.key'"
# Stop them on any exit, before lib.sh's cleanup (which keeps $WORK, servers' logs included,
# when the test failed). `(exit $status)` hands cleanup the test's status in $?.
stop_private_servers() {
    local status=$1
    set +e
    "$servers" stop >/dev/null 2>&1
    (exit "$status")
    cleanup
}
trap 'stop_private_servers $?' EXIT
"$servers" start || fail "private TLS servers did not start"
eval "$("$servers" env)" # RMQ2PG_TEST_AMQP_URL / _PG_URL now name the private pair

# A user of each server whose password lives only in a file, with every character that
# URL encoding, libpq quoting or log masking could get wrong.
password="s3cr3t p@ss'w\\rd:%&/?"
printf '%s\n' "$password" >"$WORK/password"
chmod 600 "$WORK/password"
"$servers" rabbitmqctl add_user tlsuser "$password" >/dev/null
"$servers" rabbitmqctl set_permissions -p / tlsuser '.*' '.*' '.*' >/dev/null
psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -v pw="$password" <<'SQL'
CREATE ROLE tlsuser LOGIN PASSWORD :'pw';
SQL
create_orders_table "$TABLE"
sql "ALTER TABLE \"$TABLE\" OWNER TO tlsuser"
publish --queue "$QUEUE" --declare-queue --generate orders --count $N # plain port, as rmq2pg
log "published $N on the plain listener"

# write_tls_config FILE CA_FILE [CLIENT_CERT_YAML]
write_tls_config() {
    cat >"$1" <<YAML
amqp:
  urls: ["amqps://tlsuser@127.0.0.1:$tls_port/"]
  password_file: $WORK/password
  heartbeat_s: 10
  tls:
    ca_file: $2
${3:-}
postgres:
  url: "postgresql://tlsuser@127.0.0.1:$RMQ2PG_TEST_PG_PORT/rmq2pg_test?sslmode=verify-full&sslrootcert=$tls/ca.crt"
  password_file: $WORK/password
startup_timeout_s: ${STARTUP_TIMEOUT_S:-0}
shutdown_timeout_ms: 10000
http: { listen: "127.0.0.1:$http_port" }
retry: { initial_ms: 100, max_ms: 500 }
pipelines:
$(orders_pipeline "$TEST_ID" "$QUEUE" "public.$TABLE" prefetch= max_messages=200 max_bytes= key= \
        columns=core)
YAML
}
client_cert="    cert_file: $tls/client.crt
    key_file: $tls/client.key"

# ---- the happy path: TLS to both, passwords from the file.
write_tls_config "$WORK/rmq2pg.yaml" "$tls/ca.crt" "$client_cert"
start_daemon "$WORK/rmq2pg.yaml"
wait_until 60 "$N rows" rows_equal "$TABLE" $N
log "$N rows over TLS"
# Both servers confirm the daemon's connections are encrypted.
amqp_tls=$("$servers" rabbitmqctl list_connections -q user ssl | awk '$1 == "tlsuser"' | sort -u)
[[ "$amqp_tls" == $'tlsuser\ttrue' ]] || fail "broker connections of tlsuser: '$amqp_tls'"
pg_tls=$(sql "SELECT string_agg(DISTINCT s.ssl::text, ',') FROM pg_stat_ssl s
              JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'tlsuser'")
[[ "$pg_tls" == "true" ]] || fail "PostgreSQL connections of tlsuser use ssl: '$pg_tls'"
log "broker and PostgreSQL report TLS connections"
# rmq2pg-publish over amqps:// with the same CA and client certificate; with a CA that did not
# sign the broker's certificate it fails with a clear error and publishes nothing.
M=200
tls_publish() { # CA_FILE ARGS...
    local ca=$1
    shift
    "$RMQ2PG_BUILD_DIR/rmq2pg-publish" --url "amqps://guest:guest@127.0.0.1:$tls_port/" \
        --queue "$QUEUE" --tls-ca-file "$ca" --tls-cert-file "$tls/client.crt" \
        --tls-key-file "$tls/client.key" "$@"
}
tls_publish "$tls/ca.crt" --generate orders --start $((N + 1)) --count $M >/dev/null ||
    fail "rmq2pg-publish over amqps:// failed"
wait_until 60 "$((N + M)) rows" rows_equal "$TABLE" $((N + M))
status=0
out=$(tls_publish "$tls/other-ca.crt" --generate orders --start $((N + M + 1)) --count 1 2>&1) ||
    status=$?
((status == 1)) || fail "rmq2pg-publish with a wrong CA exited $status, expected 1: $out"
grep -q "TLS certificate verification of 127.0.0.1:$tls_port .* failed" <<<"$out" ||
    fail "rmq2pg-publish with a wrong CA did not say so: $out"
log "rmq2pg-publish over TLS: $M more rows; wrong CA: $out"

# ---- rotation: a new client certificate and new passwords under the same file names, then
# SIGHUP. The YAML is unchanged; the reload sees the files changed and reconnects every worker.
new_cert client2 rmq2pg-client-rotated 'extendedKeyUsage=clientAuth'
chmod 644 "$tls/client2.crt"
cp "$tls/client2.crt" "$tls/client.crt"
cp "$tls/client2.key" "$tls/client.key"
rotated="s3cr3t rotated:%/'"
"$servers" rabbitmqctl change_password tlsuser "$rotated" >/dev/null
psql "$RMQ2PG_TEST_PG_URL" -XAtq -v ON_ERROR_STOP=1 -v pw="$rotated" <<'SQL'
ALTER ROLE tlsuser PASSWORD :'pw';
SQL
printf '%s\n' "$rotated" >"$WORK/password"
sighup_at=$(sql "SELECT clock_timestamp()")
kill -HUP "$DAEMON_PID"
wait_until 30 "the reload to restart the connections" \
    grep -q "connection settings .* changed: restarting every pipeline" "$DAEMON_LOG"
cert_subjects() {
    "$servers" rabbitmqctl list_connections -q user peer_cert_subject |
        awk -F'\t' '$1 == "tlsuser" { print $2 }' | sort -u | paste -sd' '
}
# Every broker connection (workers and the status sampler) presents the new certificate.
only_rotated_cert() { [[ $(cert_subjects) == "CN=rmq2pg-client-rotated" ]]; }
wait_until 30 "only connections with the rotated certificate" only_rotated_cert
# Every PostgreSQL connection was opened after the SIGHUP, when only the rotated password
# could log in.
only_new_pg_logins() {
    [[ $(sql "SELECT count(*) FILTER (WHERE backend_start < '$sighup_at') || ' ' || count(*)
                FROM pg_stat_activity WHERE usename = 'tlsuser'") =~ ^0\ [1-9] ]]
}
wait_until 30 "only PostgreSQL logins after the SIGHUP" only_new_pg_logins
K=300
publish --queue "$QUEUE" --generate orders --start $((N + M + 1)) --count $K
wait_until 60 "$((N + M + K)) rows after the rotation" rows_equal "$TABLE" $((N + M + K))
log "rotated certificate and passwords taken at SIGHUP: broker sees '$(cert_subjects)'," \
    "every PostgreSQL login after it, $K more rows"
# The status sampler polls the queue depth over its own amqps:// connection.
depth_polled() {
    curl -s "http://127.0.0.1:$http_port/api/status" |
        grep -Eq '"queue_depth":\{"messages":[0-9]+,"consumers":2,'
}
wait_until 20 "queue depth polled over TLS" depth_polled
# The password appears nowhere the daemon shows things (searched by its first word, "s3cr3t",
# which stays as is even percent-encoded).
pages="$WORK/pages.txt"
for path in /metrics /api/status / /healthz /readyz; do
    curl -s "http://127.0.0.1:$http_port$path" >>"$pages" || fail "GET $path"
done
grep -Fq 'rmq2pg_' "$pages" || fail "the HTTP endpoints answered nothing useful"
wait_until 30 "queue empty" queue_ready_equal "$QUEUE" 0
stop_daemon
((DAEMON_EXIT == 0)) || fail "daemon exited $DAEMON_EXIT"
if grep -E '^\S+ (error|critical) ' "$DAEMON_LOG"; then fail "errors logged over TLS"; fi
for file in "$DAEMON_LOG" "$pages"; do
    if grep -Fq "s3cr3t" "$file"; then fail "the password shows in $file"; fi
done
grep -q "connected to PostgreSQL (.*password=\*\*\*" "$DAEMON_LOG" ||
    fail "the logged connection string does not show the masked password"
[[ $(sql "SELECT count(DISTINCT id) FROM \"$TABLE\"") == "$((N + M + K))" ]] || fail "duplicate ids"
log "the password is in no log line, metric or page"

# ---- a CA that did not sign the broker's certificate: a clear verification error, exit 1.
: >"$DAEMON_LOG"
STARTUP_TIMEOUT_S=3 write_tls_config "$WORK/wrong-ca.yaml" "$tls/other-ca.crt" "$client_cert"
start_daemon "$WORK/wrong-ca.yaml"
status=0
wait "$DAEMON_PID" || status=$?
DAEMON_PID=""
((status == 1)) || fail "with a wrong CA the daemon exited $status, expected 1"
grep -q "TLS certificate verification of 127.0.0.1:$tls_port vhost '/' (TLS) failed" "$DAEMON_LOG" ||
    fail "no certificate verification error in the log"
log "wrong CA: exit 1, $(grep -m1 -o 'TLS certificate verification.*' "$DAEMON_LOG")"

# ---- no client certificate: the broker (fail_if_no_peer_cert) refuses; the error says TLS.
: >"$DAEMON_LOG"
STARTUP_TIMEOUT_S=3 write_tls_config "$WORK/no-cert.yaml" "$tls/ca.crt"
start_daemon "$WORK/no-cert.yaml"
status=0
wait "$DAEMON_PID" || status=$?
DAEMON_PID=""
((status == 1)) || fail "without a client certificate the daemon exited $status, expected 1"
grep -q "broker: .*certificate required" "$DAEMON_LOG" ||
    fail "no error naming the missing client certificate in the log"
log "no client certificate: exit 1, $(grep -m1 -o 'broker: .*certificate required.*' "$DAEMON_LOG")"
log "PASS"
