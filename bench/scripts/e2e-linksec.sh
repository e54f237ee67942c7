#!/usr/bin/env bash
# What securing the peer link costs: a full sync of the same image into an empty standby over loopback,
# with the link plain, authenticated by a pre-shared key (PSK: a challenge-response at connect, frames in
# the clear), and under mutual TLS (encryption of every frame). Same machine, same run.
#   bench/scripts/e2e-linksec.sh [SIZE] [RUNS]      (defaults: 1GiB, 3)
# Prints the median time of each mode, its throughput, and the ratio to plain. Keys and certificates are
# made with openssl as docs/operations.md ("Securing the links") shows. Every copy is compared with cmp.
# Env: DOPPEL_JAR (default agent/target/doppel.jar, copied once), DOPPEL_COMPRESSION=lz4|zstd|none (lz4).
# Needs: java, curl, jq, openssl, python3.
set -Eeuo pipefail
trap 'echo "bench: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$here/bench/scripts/lib.sh"
size="${1:-1GiB}"
runs="${2:-3}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS=$runs: expected a positive integer" >&2; exit 2; }
for tool in java curl jq openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install curl jq openssl)" >&2; exit 2; }
done
src_jar="${DOPPEL_JAR:-$here/agent/target/doppel.jar}"
work="$(mktemp -d /var/tmp/doppel-linksec-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -f "$src_jar" ] || { echo "bench: no $src_jar (build it: mvn -B -q -DskipTests package)" >&2; exit 2; }
jar="$work/doppel.jar"; cp "$src_jar" "$jar"
doppel() { java --enable-native-access=ALL-UNNAMED -jar "$jar" "$@"; }

# keys, as the operations guide makes them
k="$work/keys"; mkdir -p "$k"
( cd "$k"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  for node in alpha beta; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $node.key -out $node.csr \
      -subj "/CN=$node" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' \
      $node > $node.ext
    openssl x509 -req -in $node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $node.pem -days 2 \
      -extfile $node.ext 2>/dev/null
  done
  openssl rand -hex 32 > psk
  chmod 600 psk *.key )

doppel make-image "$work/source.img" --size "$size" --seed 1 >/dev/null
bytes=$(stat -c %s "$work/source.img")

# config MODE NODE LISTEN ADMIN PEER PEERPORT DATADIR IMAGE ROLE
config() {
  local mode="$1"; shift
  node_config "$1" "$2" "$3" "$4" "$5" "$6" | awk -v mode="$mode" -v k="$k" -v node="$1" '
    { print }
    /^log-level/ && mode == "tls" {
      printf "tls-cert = \"%s/%s.pem\"\ntls-key = \"%s/%s.key\"\ntls-ca = \"%s/ca.pem\"\n", k, node, k, node, k }
    /^address/ && mode == "psk" { printf "psk-file = \"%s/psk\"\n", k }'
  volume_config vm1 "$7" "$bytes" "$8" "$4"
}

# run MODE -> "seconds bytesSent"
run() {
  local mode="$1" d="$work/run" lp bp la ba
  rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --reflink=auto --sparse=always "$work/source.img" "$d/a/vm1.img"
  lp=$(port); la=$(port); bp=$(port); ba=$(port)
  config "$mode" alpha "$lp" "$la" beta "$bp" "$d/a" "$d/a/vm1.img" primary > "$d/alpha.toml"
  config "$mode" beta "$bp" "$ba" alpha "$lp" "$d/b" "$d/b/vm1.img" standby > "$d/beta.toml"
  doppel daemon --config "$d/beta.toml" 2>"$d/beta.log" &
  pids+=($!); local bpid=$!
  until curl -sf "http://127.0.0.1:$ba/status" >/dev/null; do
    kill -0 "$bpid" 2>/dev/null || { echo "bench: beta died:" >&2; cat "$d/beta.log" >&2; exit 1; }; sleep 0.05
  done
  local t0 t1 st; t0=$(now)
  doppel daemon --config "$d/alpha.toml" 2>"$d/alpha.log" &
  pids+=($!); local apid=$!
  until st=$(curl -sf "http://127.0.0.1:$la/status") && jq -e '.volumes[0].disk == "up-to-date"
      and .volumes[0].dirtyBytes == 0 and .volumes[0].logBytes == 0' <<<"$st" >/dev/null; do
    kill -0 "$apid" 2>/dev/null || { echo "bench: alpha died:" >&2; cat "$d/alpha.log" >&2; exit 1; }; sleep 0.02
  done
  t1=$(now)
  local sent; sent=$(jq -r '.volumes[0].bytesSent' <<<"$st")
  grep -h "connected to peer" "$d/alpha.log" | sed 's/^/    /' >&2 || true
  kill "$apid" "$bpid"; wait "$apid" "$bpid" 2>/dev/null || true
  cmp -s "$d/a/vm1.img" "$d/b/vm1.img" || { echo "bench: $mode copy differs!" >&2; exit 1; }
  echo "$(calc "$t1 - $t0") $sent"
}

declare -A T B
for mode in plain psk tls; do
  ts=(); bs=()
  for ((i = 0; i < runs; i++)); do
    read -r t b < <(run "$mode")
    echo "  $mode run $((i + 1)): $t s, $b bytes sent" >&2
    ts+=("$t"); bs+=("$b")
  done
  T[$mode]=$(printf '%s\n' "${ts[@]}" | median)
  B[$mode]=$(printf '%s\n' "${bs[@]}" | median)
done

echo "full sync of a $size mixed image into an empty standby over loopback, compression ${DOPPEL_COMPRESSION:-lz4}, $runs runs each, median (from starting the primary's daemon to in sync)"
machine
printf '| link | seconds | MiB/s of image | bytes sent | time vs plain |\n|---|---|---|---|---|\n'
for mode in plain psk tls; do
  printf '| %s | %.2f | %.0f | %s | %.2fx |\n' "$mode" "${T[$mode]}" "$(calc "$bytes / 1048576 / ${T[$mode]}")" \
    "${B[$mode]}" "$(calc "${T[$mode]} / ${T[plain]}")"
done
