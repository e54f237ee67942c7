#!/usr/bin/env bash
# End-to-end resync bench: a standby that was down while a fraction of the volume changed comes back.
# doppel (primary serving the volume over NBD, ack=async, standby restarted) side by side with an rsync
# daemon (delta transfer of the same change, default block size and -B4096), same machine, same run,
# over loopback.
#   bench/scripts/e2e-resync.sh [SIZE] [FRACTION] [RUNS]     (defaults: 2GiB, 0.01, 3)
# Per run: both daemons start from identical copies of a mixed image and sync; the standby is stopped
# (SIGTERM); fio writes FRACTION of the 4 KiB blocks, each block once, at random, with random content,
# through the primary's NBD export; the standby is started again and timed until the primary reports it
# in sync. rsync then moves the same change (the pre-change image as destination, the primary's
# post-change image as source). Every copy is checked by hash. Prints the median of each case.
# Bytes on the wire: doppel counts whole frames (/status bytesSent, bytesReceived of the primary);
# rsync counts its protocol bytes (--stats "Total bytes sent" and "received" of the sending client).
# Env: DOPPEL_JAR (default agent/target/doppel.jar; copied once, so a rebuild during the run is harmless),
#      DOPPEL_COMPRESSION=lz4|zstd|none (default lz4), DOPPEL_BENCH_TIMEOUT seconds per wait (default 300).
# Needs: java, curl, jq, fio (nbd engine), python3 (rsync rows are skipped, loudly, when rsync is missing).
set -Eeuo pipefail
trap 'echo "bench: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-2GiB}"
fraction="${2:-0.01}"
runs="${3:-3}"
limit="${DOPPEL_BENCH_TIMEOUT:-300}"
src_jar="${DOPPEL_JAR:-$here/agent/target/doppel.jar}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS=$runs: expected a positive integer" >&2; exit 2; }
awk -v f="$fraction" 'BEGIN { exit !(f + 0 > 0 && f + 0 <= 1) }' ||
  { echo "bench: FRACTION=$fraction: expected a number in (0, 1]" >&2; exit 2; }
for tool in java curl jq fio python3 awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install fio curl jq python3)" >&2; exit 2; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "bench: this fio has no nbd engine (fio built with libnbd is required)" >&2; exit 2; }
have_rsync=1
command -v rsync >/dev/null || { have_rsync=0; echo "bench: rsync NOT INSTALLED: rsync rows skipped (apt-get install rsync)" >&2; }

work="$(mktemp -d /var/tmp/doppel-resync-XXXXXX)"
pids=()
exec 3>&2   # cleanup may run inside a wait whose output is discarded: it reports on fd 3
cleanup() {
  local rc=$?
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ] && [ -z "${DOPPEL_BENCH_DELETE:-}" ]; then
    # keep the daemon logs and configs of a failed run (not of an interrupted one), drop the images
    find "$work" \( -name '*.img' -o -name '*.jar' -o -name '*.meta' \) -delete 2>/dev/null || true
    echo "bench: failed (exit $rc); logs and configs kept in $work" >&3
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The jar is copied once: Maven may replace or remove it while this runs.
jar="$work/doppel.jar"
for attempt in 1 2 3 4 5; do
  if [ -f "$src_jar" ] && cp "$src_jar" "$jar" 2>/dev/null && java -jar "$jar" --version >/dev/null 2>&1; then break; fi
  rm -f "$jar"
  [ "$attempt" = 5 ] && { echo "bench: no usable $src_jar (build it: mvn -B -q -DskipTests package)" >&2; exit 2; }
  echo "bench: $src_jar missing or incomplete (being rebuilt?); retrying in 30 s" >&2
  sleep 30
done
doppel() { java --enable-native-access=ALL-UNNAMED -jar "$jar" "$@"; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }

# fail_wait WHAT "LOG..." : report a wait that did not end and the logs that tell why, then stop the bench
fail_wait() {
  echo "bench: $1; read $2 (last lines below)" >&2
  local l; for l in $2; do echo "  $l:" >&2; tail -n 20 "$l" 2>/dev/null | sed 's/^/    /' >&2 || true; done
  exit 1
}

# wait_until WHAT PID "LOG..." CMD...: polls CMD every 20 ms until it succeeds; fails when the process
# PID dies or after $limit seconds, naming the logs. CMD's output is discarded.
wait_until() {
  local what="$1" pid="$2" log="$3"; shift 3
  local deadline; deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || fail_wait "the process writing $log ended while waiting for $what" "$log"
    [ "$(date +%s)" -lt "$deadline" ] || fail_wait "timed out after ${limit}s waiting for $what" "$log"
    sleep 0.02
  done
}

# stop PID LOG: SIGTERM, wait (at most 60 s, then SIGKILL) and reap
stop() {
  local pid="$1" log="$2" i=0
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    i=$((i + 1))
    if [ "$i" -gt 3000 ]; then echo "bench: $pid did not stop in 60 s after SIGTERM, killing it; read $log" >&2; kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.02
  done
  wait "$pid" 2>/dev/null || true
}

hash_of() { doppel hash-image "$1" | awk '{print $1}'; }
same_hash() { # A B WHAT
  local ha hb; ha=$(hash_of "$1"); hb=$(hash_of "$2")
  [ -n "$ha" ] && [ "$ha" = "$hb" ] || { echo "bench: $3: hashes differ: $ha $1, $hb $2" >&2; exit 1; }
}

# 4 KiB blocks that differ between two images of the same size
changed_blocks() {
  python3 - "$1" "$2" <<'PY'
import sys
bs, n = 4096, 0
with open(sys.argv[1], 'rb') as a, open(sys.argv[2], 'rb') as b:
    while True:
        x, y = a.read(1 << 20), b.read(1 << 20)
        if not x and not y:
            break
        if x != y:
            n += sum(1 for i in range(0, max(len(x), len(y)), bs) if x[i:i + bs] != y[i:i + bs])
print(n)
PY
}

doppel make-image "$work/pre.img" --size "$size" --seed 1 >/dev/null
bytes=$(stat -c %s "$work/pre.img")
blocks=$((bytes / 4096))
n=$(awk -v b="$blocks" -v f="$fraction" 'BEGIN { printf "%d", b * f }')
[ "$n" -ge 1 ] || { echo "bench: FRACTION=$fraction of $blocks blocks is less than one block" >&2; exit 2; }

config() { # node listen admin peer peerport datadir image role [nbdport]
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
ack = "async"
TOML
  [ -z "${9:-}" ] || echo "nbd = \"127.0.0.1:$9\""
}

status() { curl -sf --max-time 5 "http://127.0.0.1:$1/status"; }
# the primary's own test for "fully replicated" (docs/operations.md, PrimaryVolume.inSync())
in_sync() { status "$1" | jq -e '.volumes[0] | .replication == "streaming" and .disk == "up-to-date"
  and .dirtyBytes == 0 and .logBytes == 0 and (.inFlightBytes // 0) == 0 and .ackedSeq == .sentSeq' >/dev/null; }
disconnected() { status "$1" | jq -e '.volumes[0].peer.connected == false' >/dev/null; }
connects_above() { status "$1" | jq -e --argjson c "$2" '.volumes[0].connects > $c' >/dev/null; }
field() { jq -r ".volumes[0].$1" <<<"$2"; }

start_daemon() { # NAME CONFIG LOG -> sets PID
  java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$2" 2>>"$3" &
  PID=$!; pids+=("$PID")
}

# doppel_run RUN -> RESULT="resync_seconds wall_seconds bytes_to_copy bytes_both_ways changed_bytes";
# leaves the primary's post-change image in $work/post.img
doppel_run() {
  local run="$1" d="$work/run" lp la np bp ba apid bpid st t0 tc t1
  rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --reflink=auto --sparse=always "$work/pre.img" "$d/a/vm1.img"
  cp --reflink=auto --sparse=always "$work/pre.img" "$d/b/vm1.img"
  lp=$(port); la=$(port); np=$(port); bp=$(port); ba=$(port)
  config alpha "$lp" "$la" beta "$bp" "$d/a" "$d/a/vm1.img" primary "$np" > "$d/alpha.toml"
  config beta "$bp" "$ba" alpha "$lp" "$d/b" "$d/b/vm1.img" standby > "$d/beta.toml"
  start_daemon beta "$d/beta.toml" "$d/beta.log"; bpid=$PID
  wait_until "the standby's admin endpoint" "$bpid" "$d/beta.log" status "$ba"
  t0=$(now)
  start_daemon alpha "$d/alpha.toml" "$d/alpha.log"; apid=$PID
  wait_until "the initial sync (primary in sync)" "$apid" "$d/alpha.log" in_sync "$la"
  t1=$(now); st=$(status "$la")
  echo "bench: run $run: initial sync of identical copies: $(calc "$t1 - $t0") s from the primary's start, $(field bytesSent "$st") bytes sent" >&2

  # the standby goes away; the primary must notice before the writes, so they all land in the dirty map
  stop "$bpid" "$d/beta.log"
  wait_until "the primary to see the standby gone" "$apid" "$d/alpha.log" disconnected "$la"
  fio --name=change --ioengine=nbd --uri="nbd://127.0.0.1:$np/vm1" --rw=randwrite --bs=4k --size="$bytes" \
      --number_ios="$n" --io_size=$((n * 4096)) --iodepth=16 --norandommap=0 --randrepeat=0 --refill_buffers \
      --end_fsync=1 --output-format=json --output="$d/fio.json" >/dev/null 2>"$d/fio.err" ||
    { echo "bench: fio failed; read $d/fio.err and $d/alpha.log" >&2; sed 's/^/    /' "$d/fio.err" >&2; exit 1; }
  local ios; ios=$(jq -r '.jobs[0].write.total_ios' "$d/fio.json")
  [ "$ios" = "$n" ] || echo "bench: WARNING: fio wrote $ios blocks, expected $n; read $d/fio.json" >&2
  st=$(status "$la")
  local dirty sent0 recv0 c0; dirty=$(field dirtyBytes "$st"); sent0=$(field bytesSent "$st")
  recv0=$(field bytesReceived "$st"); c0=$(field connects "$st")
  [ "$dirty" = $((n * 4096)) ] || echo "bench: WARNING: primary dirtyBytes=$dirty after the writes, expected $((n * 4096))" >&2

  t0=$(now)
  start_daemon beta "$d/beta.toml" "$d/beta.log"; bpid=$PID
  wait_until "the primary to reconnect to the restarted standby" "$bpid" "$d/beta.log $d/alpha.log" connects_above "$la" "$c0"
  tc=$(now)
  wait_until "the resync (primary in sync)" "$apid" "$d/alpha.log" in_sync "$la"
  t1=$(now); st=$(status "$la")
  local sent recv; sent=$(( $(field bytesSent "$st") - sent0 )); recv=$(( $(field bytesReceived "$st") - recv0 ))
  KIND=$(jq -r '.volumes[0].sync // "full-compare"' <<<"$st")   # "sync" is newer than some daemons
  stop "$apid" "$d/alpha.log"; stop "$bpid" "$d/beta.log"
  same_hash "$d/a/vm1.img" "$d/b/vm1.img" "doppel run $run: standby copy"
  local changed; changed=$(changed_blocks "$work/pre.img" "$d/a/vm1.img")
  [ "$changed" = "$n" ] || echo "bench: WARNING: $changed blocks differ from the pre-change image, expected $n (fio wrote a block twice?)" >&2
  { grep -hE "connected to peer|holds generation|resync from|resync done|sync done|up to date|WARN|ERROR" "$d/alpha.log" "$d/beta.log" | sed "s/^/    /"; } >&2 || true
  mv "$d/a/vm1.img" "$work/post.img"
  rm -rf "$d"
  RESULT="$(calc "$t1 - $tc") $(calc "$t1 - $t0") $sent $((sent + recv)) $((changed * 4096))"
}

# rsync_run BLOCK|default -> RESULT="seconds seconds bytes_to_copy bytes_both_ways"; $work/post.img onto a copy
# of $work/pre.img
rsync_run() {
  local blk="$1" d="$work/rs" p rpid
  rm -rf "$d"; mkdir -p "$d/dst"
  cp --reflink=auto --sparse=always "$work/pre.img" "$d/dst/vm1.img"
  p=$(port)
  cat > "$d/rsyncd.conf" <<CONF
pid file = $d/rsyncd.pid
use chroot = no
[dst]
path = $d/dst
read only = no
uid = $(id -u)
gid = $(id -g)
CONF
  rsync --daemon --no-detach --config="$d/rsyncd.conf" --port="$p" --address=127.0.0.1 --log-file="$d/rsyncd.log" &
  rpid=$!; pids+=("$rpid")
  wait_until "the rsync daemon" "$rpid" "$d/rsyncd.log" rsync "rsync://127.0.0.1:$p/"
  local opts=(-I --inplace --no-whole-file --stats); [ "$blk" = default ] || opts+=("-B$blk")
  local t0 t1 out; t0=$(now)
  out=$(rsync "${opts[@]}" "$work/post.img" "rsync://127.0.0.1:$p/dst/vm1.img") ||
    { echo "bench: rsync failed; read $d/rsyncd.log" >&2; exit 1; }
  t1=$(now)
  stop "$rpid" "$d/rsyncd.log"
  same_hash "$work/post.img" "$d/dst/vm1.img" "rsync ${opts[*]}: destination"
  local sent recv
  sent=$(grep -E '^Total bytes sent' <<<"$out" | tr -dc 0-9)
  recv=$(grep -E '^Total bytes received' <<<"$out" | tr -dc 0-9)
  rm -rf "$d"
  RESULT="$(calc "$t1 - $t0") $(calc "$t1 - $t0") $sent $((sent + recv))"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cases=(doppel); [ "$have_rsync" = 1 ] && cases+=(rsync rsync-B4096)
declare -A S W B A C
for c in "${cases[@]}"; do S[$c]=""; W[$c]=""; B[$c]=""; A[$c]=""; done
for ((i = 1; i <= runs; i++)); do
  # not in a subshell: the daemons' pids must reach cleanup, and a failure must stop the bench
  doppel_run "$i"; read -r s w b a ch <<<"$RESULT"
  S[doppel]+="$s "; W[doppel]+="$w "; B[doppel]+="$b "; A[doppel]+="$a "; C[$i]=$ch
  echo "bench: run $i: doppel resync ($KIND) $s s ($w s from the standby's start), $b bytes to the standby, $a both ways, $ch bytes changed" >&2
  if [ "$have_rsync" = 1 ]; then
    for c in rsync rsync-B4096; do
      blk=default; [ "$c" = rsync-B4096 ] && blk=4096
      rsync_run "$blk"; read -r s w b a <<<"$RESULT"
      S[$c]+="$s "; W[$c]+="$w "; B[$c]+="$b "; A[$c]+="$a "
      echo "bench: run $i: $c $s s, $b bytes sent, $a both ways" >&2
    done
  fi
  rm -f "$work/post.img"
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
changed=$(printf '%s\n' "${C[@]}" | median)
echo "image: $size mixed (1 MiB stripes: zeros, text-like, random); change: $n random 4 KiB blocks ($fraction), each once, random content, written through the primary's NBD export (ack=async) while the standby was down; $runs run(s), median; page cache warm; loopback"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(java -version 2>&1 | awk 'NR == 1'), $(fio --version), $( (rsync --version 2>/dev/null || echo 'x x missing') | awk 'NR == 1 {print "rsync " $3}'), compression ${DOPPEL_COMPRESSION:-lz4}"
echo "seconds: doppel = from the standby's handshake to in sync; wall = from starting the standby's JVM (includes the primary's reconnect backoff, up to 5 s); rsync = the client's run against a running daemon"
printf '| case | seconds | wall s | bytes to the copy | bytes both ways | changed bytes | both ways / changed | s / doppel s | s / doppel wall s |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
ds=$(med "${S[doppel]}"); dw=$(med "${W[doppel]}")
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y > 0) printf "%.2fx", x / y; else print "n/a" }'; }
for c in "${cases[@]}"; do
  s=$(med "${S[$c]}"); w=$(med "${W[$c]}"); b=$(med "${B[$c]}"); a=$(med "${A[$c]}")
  name=$c; [ "$c" = doppel ] && name="doppel ($KIND)"
  printf '| %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s |\n' "$name" "$s" "$w" "$b" "$a" "$changed" \
    "$(ratio "$a" "$changed" | tr -d x)" "$([ "$c" = doppel ] && echo - || ratio "$s" "$ds")" \
    "$([ "$c" = doppel ] && echo - || ratio "$s" "$dw")"
done
