# Shared helpers of the end-to-end benches (sourced, not run).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
machine() {
  echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(java -version 2>&1 | head -1)"
}

# node_config NODE LISTEN ADMIN PEER PEERPORT DATADIR: the [node] and [[peer]] tables of a loopback pair
node_config() {
  cat <<TOML
[node]
name = "$1"
listen = "127.0.0.1:$2"
admin = "127.0.0.1:$3"
data-dir = "$6"
log-level = "info"
[[peer]]
name = "$4"
address = "127.0.0.1:$5"
TOML
}

# volume_config NAME PATH SIZE ROLE PEER [EXTRA-LINE...]: one [[volume]] table
volume_config() {
  local name="$1" path="$2" size="$3" role="$4" peer="$5"; shift 5
  printf '[[volume]]\nname = "%s"\npath = "%s"\nsize = %s\nrole = "%s"\npeer = "%s"\ncompression = "%s"\n' \
    "$name" "$path" "$size" "$role" "$peer" "${DOPPEL_COMPRESSION:-lz4}"
  local line; for line in "$@"; do printf '%s\n' "$line"; done
}

# volume_in_sync ADMIN VOLUME: the primary shows VOLUME streaming, up to date, nothing dirty or queued
volume_in_sync() {
  curl -sf "http://127.0.0.1:$1/status" 2>/dev/null | jq -e --arg v "$2" \
    '.volumes[] | select(.name == $v) | .disk == "up-to-date" and .dirtyBytes == 0 and .logBytes == 0' >/dev/null
}

# volume_field ADMIN VOLUME FIELD
volume_field() {
  curl -sf "http://127.0.0.1:$1/status" | jq -r --arg v "$2" --arg f "$3" '.volumes[] | select(.name == $v) | .[$f]'
}

# metrics_snapshot ADMIN FILE: save the Prometheus text of a daemon's /metrics
metrics_snapshot() { curl -sf "http://127.0.0.1:$1/metrics" > "$2"; }

# histogram_quantiles BEFORE AFTER METRIC: "p50 p99" in ms of a Prometheus histogram over the interval
# between two snapshots (bucket counts subtracted; a quantile is its bucket's upper bound, so it is an
# upper estimate at the buckets' resolution)
histogram_quantiles() {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
def buckets(path, name):
    out = {}
    for line in open(path):
        m = re.match(name + r'_bucket\{.*le="([^"]+)".*\} ([0-9.eE+-]+)$', line.strip())
        if m:
            le = float('inf') if m.group(1) == '+Inf' else float(m.group(1))
            out[le] = out.get(le, 0) + float(m.group(2))
    return out
b0, b1 = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
les = sorted(b1)
counts = [b1[le] - b0.get(le, 0) for le in les]
total = counts[-1] if counts else 0
def q(p):
    for le, c in zip(les, counts):
        if total and c >= p * total:
            return 'inf' if le == float('inf') else '%.1f' % (le * 1000)
    return 'n/a'
print(q(0.50), q(0.99), int(total))
PY
}
