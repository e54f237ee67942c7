#!/usr/bin/env bash
# Two-way against one-way streaming, same workload, same run, same machine (issue 8):
#   1. nbdcopy of a mixed image (zeros, text-like, random) into alpha's NBD export: time until nbdcopy ends,
#      and until the peer holds every block (one-way: the standby up to date; two-way: nothing owed);
#   2. fio 4k randwrite, QD32, on alpha only; then (two-way only) on alpha and beta at once, on disjoint
#      halves of the volume: write IOPS, and time until both images are equal.
# Both images are hashed at the end of each row and must be equal.
#   bench/scripts/e2e-twoway.sh [COPY_SIZE] [FIO_SECONDS]     (defaults: 1GiB, 10)
# Needs: java, curl, jq, fio (nbd engine), nbdcopy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
copy="${1:-1GiB}"
secs="${2:-10}"
jar="$here/agent/target/doppel.jar"
[ -f "$jar" ] || (cd "$here" && mvn -B -q -DskipTests package)
for t in java curl jq fio nbdcopy; do command -v "$t" >/dev/null || { echo "bench: $t is required (apt-get install fio libnbd-bin jq curl)" >&2; exit 2; }; done
source "$here/bench/scripts/lib.sh"
work="$(mktemp -d /var/tmp/doppel-twoway-bench-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
doppel() { java --enable-native-access=ALL-UNNAMED -jar "$jar" "$@"; }
size=$((2 << 30))
doppel make-image "$work/source.img" --size "$copy" --seed 8 >/dev/null

# start MODE: alpha and beta on loopback; sets A_ADMIN B_ADMIN A_URI B_URI and the data dirs
start() {
  local mode="$1" d="$work/$1"; rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  local al aa bl ba an bn; al=$(port); aa=$(port); bl=$(port); ba=$(port); an=$(port); bn=$(port)
  node_config alpha "$al" "$aa" beta "$bl" "$d/a" > "$d/alpha.toml"
  node_config beta "$bl" "$ba" alpha "$al" "$d/b" > "$d/beta.toml"
  if [ "$mode" = one-way ]; then
    volume_config vm1 "$d/a/vm1.img" "$size" primary beta "ack = \"async\"" "nbd = \"127.0.0.1:$an\"" >> "$d/alpha.toml"
    volume_config vm1 "$d/b/vm1.img" "$size" standby alpha "nbd = \"127.0.0.1:$bn\"" >> "$d/beta.toml"
  else
    for n in alpha beta; do
      local img="$d/a/vm1.img" np=$an peer=beta; [ $n = beta ] && { img="$d/b/vm1.img"; np=$bn; peer=alpha; }
      printf '[[volume]]\nname = "vm1"\nmode = "two-way"\npath = "%s"\nsize = %s\npeer = "%s"\ncompression = "%s"\nnbd = "127.0.0.1:%s"\n' \
        "$img" "$size" "$peer" "${DOPPEL_COMPRESSION:-lz4}" "$np" >> "$d/$n.toml"
    done
  fi
  sed -i 's/log-level = "info"/log-level = "warn"/' "$d/alpha.toml" "$d/beta.toml"
  # java itself in the background (not the doppel function): $! must be the daemon, so stop() ends it
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/beta.toml" 2>"$d/beta.log" & pids+=($!)
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/alpha.toml" 2>"$d/alpha.log" & pids+=($!)
  A_ADMIN=$aa; B_ADMIN=$ba; A_URI="nbd://127.0.0.1:$an/vm1"; B_URI="nbd://127.0.0.1:$bn/vm1"; DIR=$d; MODE=$mode
  until settled; do sleep 0.1; done
}

# applied NODE_ADMIN: the node's peer has applied everything it sent (one-way: the standby holds it)
applied() { curl -sf "http://127.0.0.1:$1/status" 2>/dev/null | jq -e '.volumes[0] | .replication == "streaming" and .dirtyBytes == 0 and .logBytes == 0 and .sentSeq == .ackedSeq' >/dev/null; }
wait_applied() { if [ "$MODE" = one-way ]; then until applied "$A_ADMIN"; do sleep 0.05; done; else until applied "$A_ADMIN" && applied "$B_ADMIN"; do sleep 0.05; done; fi; }
# owed NODE_ADMIN: nothing owed at all (two-way: the peer has it on stable storage and said so)
owed() { curl -sf "http://127.0.0.1:$1/status" 2>/dev/null | jq -e '.volumes[0] | .replication == "streaming" and .disk == "up-to-date" and .dirtyBytes == 0 and .logBytes == 0 and .inFlightBytes == 0' >/dev/null; }
settled() { if [ "$MODE" = one-way ]; then owed "$A_ADMIN"; else owed "$A_ADMIN" && owed "$B_ADMIN"; fi; }
wait_settled() { until settled; do sleep 0.05; done; }
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
same() { [ "$(doppel hash-image "$DIR/a/vm1.img" | awk '{print $1}')" = "$(doppel hash-image "$DIR/b/vm1.img" | awk '{print $1}')" ] \
  || { echo "bench: $MODE: the two images differ" >&2; exit 1; }; }
fio_iops() { # URI OFFSET SIZE -> write IOPS
  fio --name=w --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth=32 --offset="$2" --size="$3" --time_based \
    --runtime="$secs" --randrepeat=0 --output-format=json --output="$work/fio-$RANDOM.json" >/dev/null
  jq -r '.jobs[0].write.iops|floor' "$(ls -t "$work"/fio-*.json | head -1)"
}

machine
echo "workload: nbdcopy of a $copy mixed image into alpha; fio 4k randwrite QD32 ${secs}s; volume 2 GiB, block 4 KiB, lz4, loopback"
echo
echo "peer holds all: the peer applied every block sent (in its page cache, as one-way's standby ACK means);"
echo "durable: two-way only, the peer said FLUSHED for all of it (one-way's standby forces its copy every second, unreported)"
echo
echo "| mode | nbdcopy s | peer holds all s | MiB/s to the peer | durable s | fio alpha IOPS | peer holds all after s | fio alpha+beta IOPS (two-way) | peer holds all after s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
bytes=$(stat -c %s "$work/source.img")
for mode in one-way two-way; do
  start "$mode"
  t0=$(now); nbdcopy "$work/source.img" "$A_URI"; t1=$(now); wait_applied; t2=$(now); wait_settled; t2d=$(now)
  fa=$(fio_iops "$A_URI" 0 1g); t3=$(now); wait_applied; t4=$(now); wait_settled
  both=-; sb=-
  if [ "$mode" = two-way ]; then
    fio_iops "$A_URI" 0 1g > "$work/a.iops" & fa_pid=$!
    fio_iops "$B_URI" 1g 1g > "$work/b.iops"
    wait $fa_pid
    t5=$(now); wait_applied; t6=$(now); wait_settled
    both=$(( $(cat "$work/a.iops") + $(cat "$work/b.iops") )); sb=$(printf '%.2f' "$(calc "$t6 - $t5")")
  fi
  same
  durable=-; [ "$mode" = two-way ] && durable=$(printf '%.2f' "$(calc "$t2d - $t0")")
  printf '| %s | %.2f | %.2f | %.0f | %s | %s | %.2f | %s | %s |\n' "$mode" "$(calc "$t1 - $t0")" "$(calc "$t2 - $t0")" \
    "$(calc "$bytes / 1048576 / ($t2 - $t0)")" "$durable" "$fa" "$(calc "$t4 - $t3")" "$both" "$sb"
  stop
done
