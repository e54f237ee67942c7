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
