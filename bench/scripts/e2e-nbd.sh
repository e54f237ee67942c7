#!/usr/bin/env bash
# NBD bench: fio 4K randwrite at QD1 and QD32, and nbdcopy sequential writes, through doppel's NBD
# export (replicating to a standby on loopback, ack=async and ack=sync) side by side with
# `nbdkit file` serving the same kind of image, in the same run on the same machine.
#   bench/scripts/e2e-nbd.sh [SECONDS_PER_FIO_RUN] [COPY_SIZE]     (defaults: 10, 1GiB)
# Needs: java, curl, jq, fio (nbd engine), nbdcopy, nbdkit. Missing peers are reported and skipped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
secs="${1:-10}"
copy="${2:-1GiB}"
jar="$here/agent/target/doppel.jar"
[ -f "$jar" ] || (cd "$here" && mvn -B -q -DskipTests package)
work="$(mktemp -d /var/tmp/doppel-nbd-bench-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
for t in java curl jq fio nbdcopy; do command -v "$t" >/dev/null || { echo "bench: $t is required (apt-get install fio libnbd-bin)" >&2; exit 2; }; done
have_nbdkit=1; command -v nbdkit >/dev/null || { have_nbdkit=0; echo "bench: nbdkit NOT INSTALLED: its rows are skipped" >&2; }
source "$here/bench/scripts/lib.sh"
size=$((1 << 30))
java -jar "$jar" make-image "$work/source.img" --size "$copy" --seed 5 >/dev/null

# start_doppel ACK -> sets URI; primary + standby daemons, waits until the standby is up to date
start_doppel() {
  local ack="$1" d="$work/doppel-$1"; mkdir -p "$d/a" "$d/b"
  local lp la bp ba np; lp=$(port); la=$(port); bp=$(port); ba=$(port); np=$(port)
  for side in alpha beta; do
    if [ $side = alpha ]; then me=$lp; adm=$la; peer=beta; pp=$bp; role=primary; img="$d/a/vm1.img"; dd="$d/a"; nbdline="nbd = \"127.0.0.1:$np\""
    else me=$bp; adm=$ba; peer=alpha; pp=$lp; role=standby; img="$d/b/vm1.img"; dd="$d/b"; nbdline=""; fi
    cat > "$d/$side.toml" <<TOML
[node]
name = "$side"
listen = "127.0.0.1:$me"
admin = "127.0.0.1:$adm"
data-dir = "$dd"
log-level = "warn"
[[peer]]
name = "$peer"
address = "127.0.0.1:$pp"
[[volume]]
name = "vm1"
path = "$img"
size = $size
role = "$role"
ack = "$ack"
$nbdline
TOML
  done
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/beta.toml" 2>"$d/beta.log" & pids+=($!)
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/alpha.toml" 2>"$d/alpha.log" & pids+=($!)
  until curl -sf "http://127.0.0.1:$la/status" 2>/dev/null | jq -e '.volumes[0].disk == "up-to-date"' >/dev/null; do sleep 0.2; done
  URI="nbd://127.0.0.1:$np/vm1"; ADMIN=$la
}

start_nbdkit() {
  truncate -s "$size" "$work/nbdkit.img"
  local p; p=$(port)
  nbdkit -f -i 127.0.0.1 -p "$p" file "$work/nbdkit.img" & pids+=($!)
  until nbdinfo "nbd://127.0.0.1:$p/" >/dev/null 2>&1; do sleep 0.1; done
  URI="nbd://127.0.0.1:$p/"; ADMIN=""
}

fio_run() { # URI QD -> "iops p50_us p99_us"
  fio --name=w --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth="$2" --size=256m --time_based \
      --runtime="$secs" --randrepeat=0 --output-format=json --output="$work/fio.json" >/dev/null
  jq -r '.jobs[0].write | "\(.iops|floor) \(.clat_ns.percentile["50.000000"]/1000|floor) \(.clat_ns.percentile["99.000000"]/1000|floor)"' "$work/fio.json"
}

copy_run() { # URI -> "seconds MiB/s"
  local t0 t1; t0=$(date +%s.%N)
  nbdcopy "$work/source.img" "$1"
  t1=$(date +%s.%N)
  local s; s=$(echo "$t1 - $t0" | bc -l)
  printf '%.2f %.0f\n' "$s" "$(echo "$(stat -c %s "$work/source.img") / 1048576 / $s" | bc -l)"
}

wait_synced() { [ -z "$ADMIN" ] && return 0
  until curl -sf "http://127.0.0.1:$ADMIN/status" | jq -e '.volumes[0] | .disk == "up-to-date" and .dirtyBytes == 0 and .logBytes == 0' >/dev/null; do sleep 0.2; done; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); fio $(fio --version); nbdkit $(nbdkit --version 2>/dev/null | head -1 || echo missing)"
echo "fio: 4k randwrite over 256 MiB, ${secs}s per run; nbdcopy: $copy mixed image (zeros, text-like, random); loopback"
echo "lag: doppel_replication_write_lag_seconds (a write on the primary to the standby holding it) over the QD32 run; bucket upper bounds"
printf '| target | QD1 IOPS | QD1 p50 us | QD1 p99 us | QD32 IOPS | QD32 p50 us | QD32 p99 us | QD32 lag p50 ms | QD32 lag p99 ms | nbdcopy s | nbdcopy MiB/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n'
targets=(doppel-async doppel-sync); [ $have_nbdkit = 1 ] && targets=(nbdkit-file "${targets[@]}")
for target in "${targets[@]}"; do
  case $target in
    nbdkit-file) start_nbdkit ;;
    doppel-async) start_doppel async ;;
    doppel-sync) start_doppel sync ;;
  esac
  read -r i1 a1 b1 < <(fio_run "$URI" 1); wait_synced
  [ -n "$ADMIN" ] && metrics_snapshot "$ADMIN" "$work/m0"
  read -r i32 a32 b32 < <(fio_run "$URI" 32); wait_synced
  l50=-; l99=-
  if [ -n "$ADMIN" ]; then metrics_snapshot "$ADMIN" "$work/m1"
    read -r l50 l99 _ < <(histogram_quantiles "$work/m0" "$work/m1" doppel_replication_write_lag_seconds); fi
  read -r cs cm < <(copy_run "$URI"); wait_synced
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$i1" "$a1" "$b1" "$i32" "$a32" "$b32" "$l50" "$l99" "$cs" "$cm"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=()
done
