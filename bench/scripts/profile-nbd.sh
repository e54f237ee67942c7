#!/usr/bin/env bash
# Profile the primary under fio 4K randwrite QD32 through NBD (standby replicating on loopback) with JFR,
# and print the hottest frames (top of stack) and the hottest doppel frames anywhere on the stack.
#   bench/scripts/profile-nbd.sh [ACK] [SECONDS]      (defaults: async, 20)
# Leaves the recording in /var/tmp/doppel-primary.jfr (open it with JDK Mission Control for more).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$here/bench/scripts/lib.sh"
ack="${1:-async}"; secs="${2:-20}"
jar="$here/agent/target/doppel.jar"
[ -f "$jar" ] || (cd "$here" && mvn -B -q -DskipTests package)
work="$(mktemp -d /var/tmp/doppel-profile-XXXXXX)"; pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
lp=$(port); la=$(port); bp=$(port); ba=$(port); np=$(port); mkdir -p "$work/a" "$work/b"
{ node_config alpha "$lp" "$la" beta "$bp" "$work/a"; volume_config vm1 "$work/a/vm1.img" '"1GiB"' primary beta "ack = \"$ack\"" "nbd = \"127.0.0.1:$np\""; } > "$work/alpha.toml"
{ node_config beta "$bp" "$ba" alpha "$lp" "$work/b"; volume_config vm1 "$work/b/vm1.img" '"1GiB"' standby alpha; } > "$work/beta.toml"
java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$work/beta.toml" 2>"$work/beta.log" & pids+=($!)
java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$work/alpha.toml" 2>"$work/alpha.log" & pids+=($!)
until volume_in_sync "$la" vm1; do sleep 0.2; done
fio_qd32() { fio --name=w --ioengine=nbd --uri="nbd://127.0.0.1:$np/vm1" --rw=randwrite --bs=4k --iodepth=32 --size=256m \
    --time_based --runtime="$1" --randrepeat=0 --output-format=json --output="$work/fio.json" >/dev/null; jq -r '.jobs[0].write.iops|floor' "$work/fio.json"; }
echo "warm-up: $(fio_qd32 10) IOPS"
jcmd "${pids[1]}" JFR.start name=p settings=profile filename=/var/tmp/doppel-primary.jfr >/dev/null
echo "profiled run: $(fio_qd32 "$secs") IOPS"
jcmd "${pids[1]}" JFR.stop name=p >/dev/null
jfr print --events jdk.ExecutionSample /var/tmp/doppel-primary.jfr > "$work/samples.txt"
echo "top frames (self):"
awk '/stackTrace = \[/ {getline; sub(/^[ \t]+/, ""); sub(/line:.*/, ""); print}' "$work/samples.txt" | sort | uniq -c | sort -rn | head -25
echo "doppel frames anywhere on the stack (inclusive):"
awk '/jdk.ExecutionSample/ {delete seen} /io\.doppel\./ {l=$0; sub(/^[ \t]+/, "", l); sub(/line:.*/, "", l); if (!(l in seen)) {seen[l]=1; print l}}' "$work/samples.txt" | sort | uniq -c | sort -rn | head -25
echo "samples: $(grep -c 'jdk.ExecutionSample' "$work/samples.txt")"
