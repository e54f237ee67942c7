#!/usr/bin/env bash
# Heap bound: a primary with a 1 TiB sparse volume (or SIZE) under a heap capped at 256 MiB takes 4 KiB
# random writes spread over the whole volume through NBD while its standby is away, so every write lands
# in the dirty map (memory-mapped, off the heap). Prints the heap in use (jstat, sampled every second),
# the live heap after a full GC, the process RSS and the dirty bytes tracked.
#   bench/scripts/e2e-heap.sh [SIZE] [SECONDS]      (defaults: 1TiB, 30)
# Needs: java (jcmd, jstat), curl, jq, fio (nbd engine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$here/bench/scripts/lib.sh"
size="${1:-1TiB}"; secs="${2:-30}"; heap="${DOPPEL_HEAP:-256m}"
jar="$here/agent/target/doppel.jar"
[ -f "$jar" ] || (cd "$here" && mvn -B -q -DskipTests package)
for t in java jcmd jstat curl jq fio; do command -v "$t" >/dev/null || { echo "bench: $t is required" >&2; exit 2; }; done
work="$(mktemp -d /var/tmp/doppel-heap-bench-XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
lp=$(port); la=$(port); bp=$(port); np=$(port)
{ node_config alpha "$lp" "$la" beta "$bp" "$work"
  volume_config vm1 "$work/vm1.img" "\"$size\"" primary beta 'ack = "async"' "nbd = \"127.0.0.1:$np\""; } > "$work/alpha.toml"
machine
echo "primary: volume $size (sparse), 4 KiB blocks, -Xmx$heap, standby never started; fio 4k randwrite QD32 over the whole volume for ${secs}s"
java --enable-native-access=ALL-UNNAMED -Xmx"$heap" -jar "$jar" daemon --config "$work/alpha.toml" 2>"$work/alpha.log" & pid=$!
until curl -sf "http://127.0.0.1:$la/status" >/dev/null 2>&1; do kill -0 "$pid" || { cat "$work/alpha.log"; exit 1; }; sleep 0.2; done
# heap in use = survivor + eden + old used (KiB), every second while fio runs
( while kill -0 "$pid" 2>/dev/null; do jstat -gc "$pid" 2>/dev/null | awk 'NR==2 {print ($3+$4+$6+$8)/1024}'; sleep 1; done ) > "$work/heap.txt" &
sampler=$!
fio --name=w --ioengine=nbd --uri="nbd://127.0.0.1:$np/vm1" --rw=randwrite --bs=4k --iodepth=32 --time_based \
    --runtime="$secs" --randrepeat=0 --output-format=json --output="$work/fio.json" >/dev/null
kill "$sampler" 2>/dev/null || true
jcmd "$pid" GC.run >/dev/null
sleep 1
live=$(jstat -gc "$pid" | awk 'NR==2 {printf "%.1f", ($3+$4+$6+$8)/1024}')
peak=$(sort -n "$work/heap.txt" | tail -1)
rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$pid/status)
hwm=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$pid/status)
dirty=$(volume_field "$la" vm1 dirtyBytes)
iops=$(jq -r '.jobs[0].write.iops|floor' "$work/fio.json")
meta=$(du -k --apparent-size "$work"/vm1.meta 2>/dev/null | awk '{print $1/1024 " MiB"}' || echo "?")
echo "| volume | heap cap | fio IOPS | dirty bytes tracked | heap in use, peak MiB | live heap after full GC MiB | RSS MiB (peak) |"
echo "|---|---|---|---|---|---|---|"
echo "| $size | $heap | $iops | $dirty | $peak | $live | $rss ($hwm) |"
echo "metadata file: $(ls -la "$work" | awk '/meta/ {print $9, $5}')"
grep -iE 'OutOfMemory|exception' "$work/alpha.log" | head -5 || true
