#!/usr/bin/env bash
# Full sync bench: a SIZE mixed image (1 MiB stripes of zeros, text-like data and random bytes, in turn)
# copied into an empty standby over loopback, side by side in one run with nbdcopy (from `nbdkit file`
# into a local file) and with an rsync daemon (`rsync --inplace`, a full copy).
#   bench/scripts/e2e-fullsync.sh [SIZE] [RUNS]      (defaults: 2GiB, 3)
# doppel is timed two ways:
#   cold  both daemons start for the run; from the primary's JVM start to the standby up to date
#         (JVM start-up and JIT warm-up included: what a first start costs);
#   warm  both daemons already run and have synced a 512 MiB volume (DOPPEL_WARMUP); the volume is added to both config
#         files and `doppel reload` applied; from the primary's reload to the standby up to date (what a
#         running service costs).
# Every doppel time ends with the standby's copy forced to disk (SYNC_DONE). The peers do not force
# theirs: nbdcopy and rsync rows are also given with a final `sync` of the copy (the "+sync" rows).
# Every copy is compared with the source (cmp). Prints medians and ratios as a Markdown table.
# Env: DOPPEL_JAR (default agent/target/doppel.jar), DOPPEL_COMPRESSION (default lz4).
# Needs: java, curl, jq, python3; nbdkit + nbdcopy and rsync for the peer rows (skipped, loudly, if missing).
set -Eeuo pipefail
trap 'echo "bench: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$here/bench/scripts/lib.sh"
size="${1:-2GiB}"
runs="${2:-3}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS=$runs: expected a positive integer" >&2; exit 2; }
for t in java curl jq python3 cmp; do command -v "$t" >/dev/null || { echo "bench: $t is required" >&2; exit 2; }; done
have_nbd=1; { command -v nbdkit && command -v nbdcopy && command -v nbdinfo; } >/dev/null ||
  { have_nbd=0; echo "bench: nbdkit/nbdcopy NOT INSTALLED: nbdcopy rows skipped (apt-get install nbdkit libnbd-bin)" >&2; }
have_rsync=1; command -v rsync >/dev/null || { have_rsync=0; echo "bench: rsync NOT INSTALLED: rsync rows skipped" >&2; }

work="$(mktemp -d /var/tmp/doppel-fullsync-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
jar="$work/doppel.jar"; cp "${DOPPEL_JAR:-$here/agent/target/doppel.jar}" "$jar"
doppel() { java --enable-native-access=ALL-UNNAMED -jar "$jar" "$@"; }
daemon() { java --enable-native-access=ALL-UNNAMED -jar "$jar" daemon --config "$1" 2>>"$2" & pids+=($!); }
await() { # WHAT CMD...: polls every 50 ms, at most 10 minutes
  local deadline=$(( $(date +%s) + 600 ))
  until "${@:2}"; do [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: timed out waiting for $1 ($work)" >&2; exit 1; }; sleep 0.05; done
}
same() { cmp -s "$work/source.img" "$1" || { echo "bench: $2: the copy differs from the source" >&2; exit 1; }; }

doppel make-image "$work/source.img" --size "$size" --seed 1 >/dev/null
doppel make-image "$work/warmup.img" --size "${DOPPEL_WARMUP:-512MiB}" --seed 9 >/dev/null
warmup_bytes=$(stat -c %s "$work/warmup.img")
bytes=$(stat -c %s "$work/source.img")

# doppel_cold -> "seconds bytes-sent"
doppel_cold() {
  local d="$work/cold" lp la bp ba; rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --sparse=always "$work/source.img" "$d/a/vm1.img"
  lp=$(port); la=$(port); bp=$(port); ba=$(port)
  { node_config alpha "$lp" "$la" beta "$bp" "$d/a"; volume_config vm1 "$d/a/vm1.img" "$bytes" primary beta; } > "$d/alpha.toml"
  { node_config beta "$bp" "$ba" alpha "$lp" "$d/b"; volume_config vm1 "$d/b/vm1.img" "$bytes" standby alpha; } > "$d/beta.toml"
  daemon "$d/beta.toml" "$d/beta.log"
  await "the standby to listen" curl -sf "http://127.0.0.1:$ba/status" -o /dev/null
  local t0 t1; t0=$(now)
  daemon "$d/alpha.toml" "$d/alpha.log"
  await "the first sync" volume_in_sync "$la" vm1
  t1=$(now)
  local sent; sent=$(volume_field "$la" vm1 bytesSent)
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; pids=()
  same "$d/b/vm1.img" "doppel cold"
  echo "$(calc "$t1 - $t0") $sent"
}

# doppel_warm -> "seconds bytes-sent"
doppel_warm() {
  local d="$work/warm" lp la bp ba; rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  cp --sparse=always "$work/source.img" "$d/a/vm1.img"
  cp --sparse=always "$work/warmup.img" "$d/a/w0.img"
  lp=$(port); la=$(port); bp=$(port); ba=$(port)
  { node_config alpha "$lp" "$la" beta "$bp" "$d/a"; volume_config w0 "$d/a/w0.img" "$warmup_bytes" primary beta; } > "$d/alpha.toml"
  { node_config beta "$bp" "$ba" alpha "$lp" "$d/b"; volume_config w0 "$d/b/w0.img" "$warmup_bytes" standby alpha; } > "$d/beta.toml"
  daemon "$d/beta.toml" "$d/beta.log"
  daemon "$d/alpha.toml" "$d/alpha.log"
  await "the warm-up volume" volume_in_sync "$la" w0
  volume_config vm1 "$d/b/vm1.img" "$bytes" standby alpha >> "$d/beta.toml"
  volume_config vm1 "$d/a/vm1.img" "$bytes" primary beta >> "$d/alpha.toml"
  doppel reload --config "$d/beta.toml" >/dev/null   # --config: the admin address and token from the file
  local t0 t1; t0=$(now)
  doppel reload --config "$d/alpha.toml" >/dev/null
  await "the added volume" volume_in_sync "$la" vm1
  t1=$(now)
  local sent; sent=$(volume_field "$la" vm1 bytesSent)
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; pids=()
  same "$d/b/vm1.img" "doppel warm"
  echo "$(calc "$t1 - $t0") $sent"
}

# nbdcopy_run SYNC(0|1) -> "seconds -"
nbdcopy_run() {
  local d="$work/nbd" p; rm -rf "$d"; mkdir -p "$d"
  p=$(port)
  nbdkit -f -r -i 127.0.0.1 -p "$p" file "$work/source.img" & pids+=($!)
  await "nbdkit" nbdinfo --size "nbd://127.0.0.1:$p/" >/dev/null
  local t0 t1; t0=$(now)
  nbdcopy "nbd://127.0.0.1:$p/" "$d/copy.img"
  [ "$1" = 1 ] && sync -f "$d/copy.img"
  t1=$(now)
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; pids=()
  same "$d/copy.img" nbdcopy
  echo "$(calc "$t1 - $t0") -"
}

# rsync_run SYNC(0|1) -> "seconds bytes-sent"
rsync_run() {
  local d="$work/rs" p; rm -rf "$d"; mkdir -p "$d/dst"
  p=$(port)
  printf 'pid file = %s\nuse chroot = no\n[dst]\npath = %s\nread only = no\nuid = root\ngid = root\n' "$d/rsyncd.pid" "$d/dst" > "$d/rsyncd.conf"
  rsync --daemon --no-detach --config="$d/rsyncd.conf" --port="$p" --address=127.0.0.1 & pids+=($!)
  await "the rsync daemon" rsync "rsync://127.0.0.1:$p/" >/dev/null
  local t0 t1 out; t0=$(now)
  out=$(rsync --inplace --stats "$work/source.img" "rsync://127.0.0.1:$p/dst/vm1.img")
  [ "$1" = 1 ] && sync -f "$d/dst/vm1.img"
  t1=$(now)
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; pids=()
  same "$d/dst/vm1.img" rsync
  echo "$(calc "$t1 - $t0") $(grep -E '^Total bytes sent' <<<"$out" | tr -dc 0-9)"
}

declare -A T B
rows=("doppel cold" "doppel warm")
[ $have_nbd = 1 ] && rows+=("nbdcopy" "nbdcopy +sync")
[ $have_rsync = 1 ] && rows+=("rsync" "rsync +sync")
for ((i = 0; i < runs; i++)); do   # interleaved, so drift on a noisy machine hits every tool alike
  for row in "${rows[@]}"; do
    case "$row" in
      "doppel cold") r=$(doppel_cold) ;;
      "doppel warm") r=$(doppel_warm) ;;
      "nbdcopy") r=$(nbdcopy_run 0) ;;
      "nbdcopy +sync") r=$(nbdcopy_run 1) ;;
      "rsync") r=$(rsync_run 0) ;;
      "rsync +sync") r=$(rsync_run 1) ;;
    esac
    T[$row]+="${r% *} "; B[$row]+="${r#* } "
    echo "bench: run $((i + 1)) $row: $r" >&2
  done
done

echo "full sync of a $size mixed image (1 MiB stripes: zeros, text-like, random) into an empty copy, loopback;"
echo "median of $runs runs, interleaved; compression ${DOPPEL_COMPRESSION:-lz4}; page cache warm"
machine
warm=$(tr ' ' '\n' <<<"${T[doppel warm]}" | grep . | median)
printf '| tool | seconds | bytes sent | MB/s | that time / doppel warm |\n|---|---|---|---|---|\n'
for row in "${rows[@]}"; do
  t=$(tr ' ' '\n' <<<"${T[$row]}" | grep . | median); b=$(tr ' ' '\n' <<<"${B[$row]}" | grep . | sort | uniq | head -1)
  printf '| %s | %.2f | %s | %.0f | %.2fx |\n' "$row" "$t" "$b" "$(calc "$bytes / 1000000 / $t")" "$(calc "$t / $warm")"
done
