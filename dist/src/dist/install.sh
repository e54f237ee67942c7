#!/bin/sh
# Installs doppel from this unpacked distribution archive (docs/install.md):
#   /opt/doppel/            this archive's contents: bin/doppel, lib/doppel.jar, the sample config, docs
#   /usr/bin/doppel         a symlink to /opt/doppel/bin/doppel
#   /etc/doppel/doppel.toml the sample config, only when there is none yet (an existing one is kept)
#   /usr/lib/systemd/system/doppel.service, /usr/lib/sysusers.d/doppel.conf, /usr/lib/tmpfiles.d/doppel.conf
# then creates the doppel user and /var/lib/doppel (systemd-sysusers, systemd-tmpfiles --create) and
# runs systemctl daemon-reload when systemd is running. It neither enables nor starts the service.
# Running it again from a newer archive upgrades in place; --uninstall removes what it installed.
set -eu

usage() {
  cat <<'EOF'
usage: install.sh [OPTIONS]            install or upgrade doppel (as root)
       install.sh --uninstall [OPTIONS] remove it again (config, data and the doppel user are kept)

  --destdir DIR   install below DIR as if it were / (staging, packaging, tests: no root needed,
                  no user is created and nothing is run); the DESTDIR variable does the same
  --prefix DIR    the program's directory (default /opt/doppel)
  --bindir DIR    where the doppel symlink goes (default /usr/bin)
  --unitdir DIR   where doppel.service goes (default /usr/lib/systemd/system; /etc/systemd/system
                  also works)
  --no-activate   copy files only: do not run systemd-sysusers, systemd-tmpfiles, systemctl
  -h, --help      this text
EOF
}

destdir="${DESTDIR:-}"
prefix=/opt/doppel
bindir=/usr/bin
unitdir=/usr/lib/systemd/system
sysusersdir=/usr/lib/sysusers.d
tmpfilesdir=/usr/lib/tmpfiles.d
confdir=/etc/doppel
statedir=/var/lib/doppel
activate=yes
uninstall=no

die() { echo "install.sh: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) need_value "$@"; destdir="$2"; shift 2 ;;
    --destdir=*) destdir="${1#*=}"; shift ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --bindir) need_value "$@"; bindir="$2"; shift 2 ;;
    --bindir=*) bindir="${1#*=}"; shift ;;
    --unitdir) need_value "$@"; unitdir="$2"; shift 2 ;;
    --unitdir=*) unitdir="${1#*=}"; shift ;;
    --no-activate) activate=no; shift ;;
    --uninstall) uninstall=yes; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for d in "$prefix" "$bindir" "$unitdir"; do
  case "$d" in
    /?*) ;;
    *) die "$d: expected an absolute directory (below --destdir when one is given)" ;;
  esac
done
prefix="${prefix%/}"
case "${prefix##*/}" in
  *doppel*) ;;   # uninstall removes this directory's docs/ and systemd/: it must be doppel's own
  *) die "--prefix $prefix: choose a directory of doppel's own, e.g. /opt/doppel or /usr/lib/doppel" ;;
esac
if [ -n "$destdir" ]; then
  destdir="$(mkdir -p "$destdir" && cd "$destdir" && pwd)"
  activate=no      # a staging tree: users, directories and services are the target system's business
elif [ "$(id -u)" != 0 ]; then
  die "run as root (sudo ./install.sh), or stage into a directory with --destdir DIR"
fi

src="$(cd "$(dirname "$0")" && pwd)"
D="$destdir"
systemd_running() { [ "$activate" = yes ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# Replaces a file by a new copy with rename, so a running daemon keeps reading its old jar.
put() { # put SRC DEST MODE
  install -m "$3" "$1" "$2.new.$$"
  mv -f "$2.new.$$" "$2"
}

if [ "$uninstall" = yes ]; then
  if systemd_running && [ -f "$unitdir/doppel.service" ]; then
    systemctl disable --now doppel.service || true
  fi
  if [ -L "$D$bindir/doppel" ] && [ "$(readlink "$D$bindir/doppel")" = "$prefix/bin/doppel" ]; then
    rm -f "$D$bindir/doppel"
  fi
  rm -f "$D$unitdir/doppel.service" "$D$unitdir/doppel@.service" \
    "$D$sysusersdir/doppel.conf" "$D$tmpfilesdir/doppel.conf"
  if [ -d "$D$prefix" ]; then
    # Only what an install put there; anything else in the directory stays.
    rm -f "$D$prefix/bin/doppel" "$D$prefix/lib/doppel.jar" "$D$prefix/install.sh" "$D$prefix/doppel.toml" \
      "$D$prefix/README.md" "$D$prefix/LICENSE" "$D$prefix/VERSION"
    rm -rf "$D$prefix/systemd" "$D$prefix/docs"
    rmdir "$D$prefix/bin" "$D$prefix/lib" "$D$prefix" 2>/dev/null || true
  fi
  if systemd_running; then
    systemctl daemon-reload
  fi
  echo "doppel removed. Kept: $D$confdir (config), $D$statedir (metadata and images) and the doppel user;"
  echo "remove them yourself when nothing there is needed any more (rm -r $confdir $statedir; userdel doppel)."
  exit 0
fi

[ -f "$src/lib/doppel.jar" ] && [ -f "$src/bin/doppel" ] && [ -f "$src/systemd/doppel.service" ] \
  || die "run the install.sh of an unpacked doppel archive ($src has no lib/doppel.jar, bin/doppel or systemd/doppel.service)"
upgrade=no
[ -f "$D$prefix/lib/doppel.jar" ] && upgrade=yes

# 1. The program: the archive's contents in $prefix.
install -d -m 0755 "$D$prefix" "$D$prefix/bin" "$D$prefix/lib" "$D$prefix/systemd"
put "$src/lib/doppel.jar" "$D$prefix/lib/doppel.jar" 0644
put "$src/bin/doppel" "$D$prefix/bin/doppel" 0755
put "$src/install.sh" "$D$prefix/install.sh" 0755
for f in doppel.toml README.md LICENSE VERSION; do
  if [ -f "$src/$f" ]; then put "$src/$f" "$D$prefix/$f" 0644; fi
done
for f in "$src"/systemd/*; do
  put "$f" "$D$prefix/systemd/$(basename "$f")" 0644
done
if [ -d "$src/docs" ]; then
  rm -rf "$D$prefix/docs"
  cp -R "$src/docs" "$D$prefix/docs"
  chmod -R u=rwX,go=rX "$D$prefix/docs"
fi

# 2. The command on PATH.
install -d -m 0755 "$D$bindir"
if [ -e "$D$bindir/doppel" ] && [ ! -L "$D$bindir/doppel" ]; then
  die "$D$bindir/doppel exists and is not a symlink (another doppel install?); remove it or choose --bindir"
fi
ln -sfn "$prefix/bin/doppel" "$D$bindir/doppel"

# 3. The config: the sample, only when there is none.
install -d -m 0755 "$D$confdir"
config_created=no
if [ -e "$D$confdir/doppel.toml" ]; then
  echo "kept $D$confdir/doppel.toml; the sample with every key is $prefix/doppel.toml"
else
  put "$src/doppel.toml" "$D$confdir/doppel.toml" 0640
  config_created=yes
fi

# 4. systemd: the unit (ExecStart names $bindir/doppel), the user and the state directory.
install -d -m 0755 "$D$unitdir" "$D$sysusersdir" "$D$tmpfilesdir"
for f in "$src"/systemd/*.service; do
  name="$(basename "$f")"
  if [ "$bindir" = /usr/bin ]; then
    put "$f" "$D$unitdir/$name" 0644
  else
    sed "s#/usr/bin/doppel #$bindir/doppel #g" "$f" > "$D$unitdir/$name.new.$$"
    chmod 0644 "$D$unitdir/$name.new.$$"
    mv -f "$D$unitdir/$name.new.$$" "$D$unitdir/$name"
  fi
done
put "$src/systemd/doppel.sysusers.conf" "$D$sysusersdir/doppel.conf" 0644
put "$src/systemd/doppel.tmpfiles.conf" "$D$tmpfilesdir/doppel.conf" 0644

if [ "$activate" = yes ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$sysusersdir/doppel.conf"
  elif ! getent passwd doppel >/dev/null; then
    useradd --system --user-group --home-dir "$statedir" --no-create-home --shell /usr/sbin/nologin \
      --comment "doppel block replication daemon" doppel
  fi
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create "$tmpfilesdir/doppel.conf"
  else
    install -d -m 0750 -o doppel -g doppel "$statedir"
  fi
  if [ "$config_created" = yes ] && getent group doppel >/dev/null; then
    chgrp doppel "$confdir/doppel.toml"   # 0640 root:doppel: the daemon reads it, others do not
  fi
  if systemd_running; then
    systemctl daemon-reload
  fi
fi

if [ "$upgrade" = yes ]; then
  echo "doppel upgraded in $D$prefix."
  if systemd_running && systemctl is-active --quiet doppel.service; then
    echo "The running daemon still runs the old version: systemctl restart doppel"
  fi
else
  echo "doppel installed in $D$prefix ($D$bindir/doppel)."
  echo "Next: edit $confdir/doppel.toml, then: systemctl enable --now doppel; doppel status"
fi
[ "$activate" = yes ] || [ -n "$destdir" ] || echo "(--no-activate: run systemd-sysusers, systemd-tmpfiles --create and systemctl daemon-reload yourself)"
exit 0
