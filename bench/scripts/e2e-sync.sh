#!/usr/bin/env bash
# End-to-end sync bench: doppel vs an rsync daemon, same image, same machine, same run, over loopback.
#   bench/scripts/e2e-sync.sh [SIZE] [RUNS]      (defaults: 1GiB, 3)
# Cases: full sync into an empty standby, and into a half-equal one (half of the 1 MiB stripes differ).
# Prints the median time and bytes on the wire of each case and the ratios; writes nothing else.
# DOPPEL_COMPRESSION=lz4|zstd|none picks the codec (default lz4).
# Needs: java, curl, jq, rsync (the rsync rows are skipped, loudly, when rsync is missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-1GiB}"
runs="${2:-3}"
doppel="$here/doppel"
work="$(mktemp -d /var/tmp/doppel-bench-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
for tool in curl jq java; do command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }; done
have_rsync=1; command -v rsync >/dev/null || { have_rsync=0; echo "bench: rsync NOT INSTALLED: rsync rows skipped (apt-get install rsync)" >&2; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

"$doppel" make-image "$work/source.img" --size "$size" --seed 1 >/dev/null
bytes=$(stat -c %s "$work/source.img")
cp --sparse=always "$work/source.img" "$work/half.img"
"$doppel" mutate-image "$work/half.img" --fraction 0.5 --unit 1MiB --seed 2 >/dev/null

config() { # node listen admin peer peerport datadir image role
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
[[volume]]
name = "vm1"
path = "$7"
size = $bytes
role = "$8"
compression = "${DOPPEL_COMPRESSION:-lz4}"
TOML
}

# doppel_run STANDBY_SEED_IMAGE|empty -> prints "seconds bytes"
doppel_run() {
  local seed="$1" d="$work/run" lp bp la ba
  rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --reflink=auto --sparse=always "$work/source.img" "$d/a/vm1.img"
  [ "$seed" = empty ] || cp --sparse=always "$seed" "$d/b/vm1.img"
  lp=$(port); la=$(port); bp=$(port); ba=$(port)
  config alpha "$lp" "$la" beta "$bp" "$d/a" "$d/a/vm1.img" primary > "$d/alpha.toml"
  config beta "$bp" "$ba" alpha "$lp" "$d/b" "$d/b/vm1.img" standby > "$d/beta.toml"
  java --enable-native-access=ALL-UNNAMED -jar "$here/agent/target/doppel.jar" daemon --config "$d/beta.toml" 2>"$d/beta.log" &
  pids+=($!); local bpid=$!
  until curl -sf "http://127.0.0.1:$ba/status" >/dev/null; do sleep 0.05; done
  local t0; t0=$(now)
  java --enable-native-access=ALL-UNNAMED -jar "$here/agent/target/doppel.jar" daemon --config "$d/alpha.toml" 2>"$d/alpha.log" &
  pids+=($!); local apid=$!
  local st
  while true; do
    st=$(curl -sf "http://127.0.0.1:$la/status" || true)
    if [ -n "$st" ] && [ "$(jq -r '.volumes[0].disk' <<<"$st")" = up-to-date ] && [ "$(jq -r '.volumes[0].dirtyBytes' <<<"$st")" = 0 ]; then break; fi
    sleep 0.02
  done
  local t1; t1=$(now)
  local sent; sent=$(jq -r '.volumes[0].bytesSent' <<<"$st")
  kill "$apid" "$bpid"; wait "$apid" "$bpid" 2>/dev/null || true
  { grep -h "" "$d/alpha.log" "$d/beta.log" | sed "s/^/    /" ; } >&2 || true
  local h1 h2; h1=$(cmp "$d/a/vm1.img" "$d/b/vm1.img" && echo same || echo DIFFERENT)
  [ "$h1" = same ] || { echo "bench: doppel copy differs!" >&2; exit 1; }
  echo "$(echo "$t1 - $t0" | bc -l) $sent"
}

# rsync_run STANDBY_SEED_IMAGE|empty -> "seconds bytes"
rsync_run() {
  local seed="$1" d="$work/rs" p
  rm -rf "$d"; mkdir -p "$d/dst"
  [ "$seed" = empty ] || cp --sparse=always "$seed" "$d/dst/vm1.img"
  p=$(port)
  cat > "$d/rsyncd.conf" <<CONF
pid file = $d/rsyncd.pid
use chroot = no
[dst]
path = $d/dst
read only = no
uid = root
gid = root
CONF
  rsync --daemon --no-detach --config="$d/rsyncd.conf" --port="$p" --address=127.0.0.1 &
  pids+=($!); local rpid=$!
  sleep 0.3
  local t0 t1 out; t0=$(now)
  out=$(rsync --inplace --no-whole-file --stats "$work/source.img" "rsync://127.0.0.1:$p/dst/vm1.img")
  t1=$(now)
  kill "$rpid"; wait "$rpid" 2>/dev/null || true
  cmp -s "$work/source.img" "$d/dst/vm1.img" || { echo "bench: rsync copy differs!" >&2; exit 1; }
  local sent; sent=$(grep -E '^Total bytes sent' <<<"$out" | tr -dc 0-9)
  echo "$(echo "$t1 - $t0" | bc -l) $sent"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A T B
for case in empty half; do
  seed=empty; [ "$case" = half ] && seed="$work/half.img"
  for tool in doppel rsync; do
    [ "$tool" = rsync ] && [ "$have_rsync" = 0 ] && continue
    ts=(); bs=()
    for ((i = 0; i < runs; i++)); do
      read -r t b < <(${tool}_run "$seed")
      ts+=("$t"); bs+=("$b")
    done
    T[$tool,$case]=$(printf '%s\n' "${ts[@]}" | median)
    B[$tool,$case]=$(printf '%s\n' "${bs[@]}" | median)
  done
done

echo "image: $size mixed (1 MiB stripes: zeros, text-like, random), $runs runs each, median; page cache warm"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(java -version 2>&1 | head -1)"
printf '| case | tool | seconds | bytes on the wire |\n|---|---|---|---|\n'
for case in empty half; do
  for tool in doppel rsync; do
    [ -n "${T[$tool,$case]:-}" ] || continue
    printf '| %s | %s | %.2f | %s |\n' "$case" "$tool" "${T[$tool,$case]}" "${B[$tool,$case]}"
  done
  if [ -n "${T[rsync,$case]:-}" ]; then
    printf '| %s | rsync/doppel time ratio | %.2fx | |\n' "$case" "$(echo "${T[rsync,$case]} / ${T[doppel,$case]}" | bc -l)"
  fi
done
