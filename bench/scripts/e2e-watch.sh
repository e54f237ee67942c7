#!/usr/bin/env bash
# End-to-end watch-mode bench: another program changes FRACTION of the 4 KiB blocks of an image file that
# doppel watches (source = "watch"); timed until the primary reports the standby up to date again. Next
# to it, in the same run, rsync --inplace --no-whole-file (-B4096 and rsync's default block size) moves
# the same change to an rsync daemon over loopback.
#   bench/scripts/e2e-watch.sh [SIZE] [FRACTION] [RUNS]     (defaults: 2GiB, 0.01, 3)
# Per run: both doppel daemons start from identical copies of a mixed image and settle (whole-volume
# compare, then a scan); python3 writes FRACTION random distinct 4 KiB blocks with random content into
# the primary's image in place (pwrite, as dd conv=notrunc would); the clock starts when the writes end.
#   detect  = until the scanner has found every changed block (/status watch.changedBlocks)
#   shipped = until blocksSent grew by that many blocks
#   settled = until the primary reports the standby up to date (a later whole scan found the file settled)
# rsync then copies the post-change image onto a copy of the pre-change image. Every copy is checked by
# hash. Prints the median of each case.
# Env: DOPPEL_JAR (default agent/target/doppel.jar), DOPPEL_WATCH_RATE (default 200MiB: the config's
#      default), DOPPEL_COMPRESSION (default lz4), DOPPEL_BENCH_TIMEOUT seconds per wait (default 300).
# Needs: java, curl, jq, python3, rsync (rsync rows are skipped, loudly, when it is missing).
set -Eeuo pipefail
trap 'echo "bench: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$here/bench/scripts/lib.sh"
size="${1:-2GiB}"
fraction="${2:-0.01}"
runs="${3:-3}"
rate="${DOPPEL_WATCH_RATE:-200MiB}"
limit="${DOPPEL_BENCH_TIMEOUT:-300}"
src_jar="${DOPPEL_JAR:-$here/agent/target/doppel.jar}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS=$runs: expected a positive integer" >&2; exit 2; }
awk -v f="$fraction" 'BEGIN { exit !(f + 0 > 0 && f + 0 <= 1) }' ||
  { echo "bench: FRACTION=$fraction: expected a number in (0, 1]" >&2; exit 2; }
for tool in java curl jq python3 awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install curl jq python3)" >&2; exit 2; }
done
have_rsync=1
command -v rsync >/dev/null || { have_rsync=0; echo "bench: rsync NOT INSTALLED: rsync rows skipped (apt-get install rsync)" >&2; }

work="$(mktemp -d /var/tmp/doppel-watch-XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ]; then
    find "$work" \( -name '*.img' -o -name '*.jar' -o -name '*.meta' -o -name '*.watch' \) -delete 2>/dev/null || true
    echo "bench: failed (exit $rc); logs and configs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

jar="$work/doppel.jar"
cp "$src_jar" "$jar" && java -jar "$jar" --version >/dev/null 2>&1 ||
  { echo "bench: no usable $src_jar (build it: mvn -B -q -DskipTests package)" >&2; exit 2; }
doppel() { java --enable-native-access=ALL-UNNAMED -jar "$jar" "$@"; }
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
wait_until() { # WHAT PID LOG CMD...
  local what="$1" pid="$2" log="$3"; shift 3
  local deadline; deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || { echo "bench: process ended while waiting for $what; read $log" >&2; tail -n 20 "$log" >&2; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: timed out waiting for $what; read $log" >&2; tail -n 20 "$log" >&2; exit 1; }
    sleep 0.02
  done
}
stop() { kill -TERM "$1" 2>/dev/null || true; while alive "$1"; do sleep 0.02; done; wait "$1" 2>/dev/null || true; }
hash_of() { doppel hash-image "$1" | awk '{print $1}'; }
same_hash() {
  local ha hb; ha=$(hash_of "$1"); hb=$(hash_of "$2")
  [ -n "$ha" ] && [ "$ha" = "$hb" ] || { echo "bench: $3: hashes differ: $ha $1, $hb $2" >&2; exit 1; }
}
status() { curl -sf --max-time 5 "http://127.0.0.1:$1/status"; }
field() { jq -r ".volumes[0].$1" <<<"$2"; }
settled() { # ADMIN SCANS_BEFORE: in sync, and a scan started after the change found the file settled
  status "$1" | jq -e --argjson s "$2" '.volumes[0] | .replication == "streaming" and .disk == "up-to-date"
    and .dirtyBytes == 0 and .ackedSeq == .sentSeq and .watch.quiet and .watch.scans > $s' >/dev/null
}
detected() { status "$1" | jq -e --argjson c "$2" '.volumes[0].watch.changedBlocks >= $c' >/dev/null; }
shipped() { status "$1" | jq -e --argjson c "$2" '.volumes[0].blocksSent >= $c' >/dev/null; }

doppel make-image "$work/pre.img" --size "$size" --seed 1 >/dev/null
bytes=$(stat -c %s "$work/pre.img")
blocks=$((bytes / 4096))
n=$(awk -v b="$blocks" -v f="$fraction" 'BEGIN { printf "%d", b * f }')
[ "$n" -ge 1 ] || { echo "bench: FRACTION=$fraction of $blocks blocks is less than one block" >&2; exit 2; }

# change IMAGE SEED: n distinct random 4 KiB blocks, random content, written in place
change() {
  python3 - "$1" "$n" "$blocks" "$2" <<'PY'
import os, random, sys
path, n, blocks, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
fd = os.open(path, os.O_WRONLY)
for b in r.sample(range(blocks), n):
    os.pwrite(fd, r.randbytes(4096), b * 4096)
os.close(fd)
PY
}

doppel_run() { # RUN -> RESULT="detect shipped settled bytes_sent bytes_read scans"
  local run="$1" d="$work/run" lp la bp ba apid bpid st t0 td ts t1
  rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --sparse=always "$work/pre.img" "$d/a/vm1.img"
  cp --sparse=always "$work/pre.img" "$d/b/vm1.img"
  lp=$(port); la=$(port); bp=$(port); ba=$(port)
  { node_config alpha "$lp" "$la" beta "$bp" "$d/a"
    volume_config vm1 "$d/a/vm1.img" "$bytes" primary beta 'source = "watch"' "watch-rate = \"$rate\"" \
      'watch-interval = "1s"'; } > "$d/alpha.toml"
  { node_config beta "$bp" "$ba" alpha "$lp" "$d/b"; volume_config vm1 "$d/b/vm1.img" "$bytes" standby alpha; } > "$d/beta.toml"
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/beta.toml" 2>>"$d/beta.log" &
  bpid=$!; pids+=("$bpid")
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$d/alpha.toml" 2>>"$d/alpha.log" &
  apid=$!; pids+=("$apid")
  wait_until "the initial compare and first scan" "$apid" "$d/alpha.log" settled "$la" 0
  st=$(status "$la")
  local sent0 read0 scans0 changed0 blocks0
  sent0=$(field bytesSent "$st"); read0=$(field watch.bytesRead "$st"); scans0=$(field watch.scans "$st")
  changed0=$(field watch.changedBlocks "$st"); blocks0=$(field blocksSent "$st")
  echo "bench: run $run: settled after start: $sent0 bytes sent, $read0 bytes read by $scans0 scan(s)" >&2
  change "$d/a/vm1.img" "$run"
  t0=$(now)
  wait_until "the scanner to find the change" "$apid" "$d/alpha.log" detected "$la" $((changed0 + n)); td=$(now)
  wait_until "the change to be shipped" "$apid" "$d/alpha.log" shipped "$la" $((blocks0 + n)); ts=$(now)
  wait_until "the standby up to date" "$apid" "$d/alpha.log" settled "$la" "$scans0"; t1=$(now)
  st=$(status "$la")
  local sent readb scans; sent=$(( $(field bytesSent "$st") - sent0 )); readb=$(( $(field watch.bytesRead "$st") - read0 ))
  scans=$(( $(field watch.scans "$st") - scans0 ))
  stop "$apid"; stop "$bpid"
  same_hash "$d/a/vm1.img" "$d/b/vm1.img" "doppel run $run: standby copy"
  mv "$d/a/vm1.img" "$work/post.img"
  rm -rf "$d"
  RESULT="$(calc "$td - $t0") $(calc "$ts - $t0") $(calc "$t1 - $t0") $sent $readb $scans"
}

rsync_run() { # BLOCK|default -> RESULT="seconds bytes_sent both_ways"
  local blk="$1" d="$work/rs" p rpid
  rm -rf "$d"; mkdir -p "$d/dst"
  cp --sparse=always "$work/pre.img" "$d/dst/vm1.img"
  p=$(port)
  printf 'pid file = %s\nuse chroot = no\n[dst]\npath = %s\nread only = no\nuid = %s\ngid = %s\n' \
    "$d/rsyncd.pid" "$d/dst" "$(id -u)" "$(id -g)" > "$d/rsyncd.conf"
  rsync --daemon --no-detach --config="$d/rsyncd.conf" --port="$p" --address=127.0.0.1 --log-file="$d/rsyncd.log" &
  rpid=$!; pids+=("$rpid")
  wait_until "the rsync daemon" "$rpid" "$d/rsyncd.log" rsync "rsync://127.0.0.1:$p/"
  local opts=(-I --inplace --no-whole-file --stats); [ "$blk" = default ] || opts+=("-B$blk")
  local t0 t1 out; t0=$(now)
  out=$(rsync "${opts[@]}" "$work/post.img" "rsync://127.0.0.1:$p/dst/vm1.img")
  t1=$(now)
  stop "$rpid"
  same_hash "$work/post.img" "$d/dst/vm1.img" "rsync ${opts[*]}: destination"
  local sent recv
  sent=$(grep -E '^Total bytes sent' <<<"$out" | tr -dc 0-9)
  recv=$(grep -E '^Total bytes received' <<<"$out" | tr -dc 0-9)
  rm -rf "$d"
  RESULT="$(calc "$t1 - $t0") $sent $((sent + recv))"
}

med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
D="" SH="" SE="" SB="" RB="" SC="" R1="" R1B="" R1A="" R2="" R2B="" R2A=""
for ((i = 1; i <= runs; i++)); do
  doppel_run "$i"; read -r d s t b rb sc <<<"$RESULT"
  D+="$d "; SH+="$s "; SE+="$t "; SB+="$b "; RB+="$rb "; SC+="$sc "
  echo "bench: run $i: doppel watch: detected $d s, shipped $s s, settled $t s; $b bytes sent, $rb bytes read by $sc scan(s)" >&2
  if [ "$have_rsync" = 1 ]; then
    rsync_run 4096; read -r s b a <<<"$RESULT"; R1+="$s "; R1B+="$b "; R1A+="$a "
    echo "bench: run $i: rsync -B4096 $s s, $b bytes sent, $a both ways" >&2
    rsync_run default; read -r s b a <<<"$RESULT"; R2+="$s "; R2B+="$b "; R2A+="$a "
    echo "bench: run $i: rsync (default block) $s s, $b bytes sent, $a both ways" >&2
  fi
  rm -f "$work/post.img"
done

echo "image: $size mixed (1 MiB stripes: zeros, text-like, random); change: $n random 4 KiB blocks ($fraction), written in place by another process; $runs run(s), median; page cache warm; loopback"
machine
echo "doppel: source = \"watch\", watch-rate $rate, watch-interval 1s, compression ${DOPPEL_COMPRESSION:-lz4}; times from the end of the writes; $(rsync --version 2>/dev/null | awk 'NR == 1 {print "rsync " $3}')"
printf '| case | detected s | shipped s | up to date s | bytes sent | bytes read (scans) |\n|---|---|---|---|---|---|\n'
printf '| doppel watch | %.2f | %.2f | %.2f | %s | %s (%s) |\n' "$(med "$D")" "$(med "$SH")" "$(med "$SE")" "$(med "$SB")" \
  "$(med "$RB")" "$(med "$SC")"
if [ "$have_rsync" = 1 ]; then
  printf '| rsync --inplace --no-whole-file -B4096 | - | %.2f | %.2f | %s (both ways %s) | both sides read in full |\n' \
    "$(med "$R1")" "$(med "$R1")" "$(med "$R1B")" "$(med "$R1A")"
  printf '| rsync --inplace --no-whole-file (default block) | - | %.2f | %.2f | %s (both ways %s) | both sides read in full |\n' \
    "$(med "$R2")" "$(med "$R2")" "$(med "$R2B")" "$(med "$R2A")"
fi
