#!/bin/bash
# package.sh builds the .deb and the tarball of one architecture from a
# static runnel binary and the files beside this script:
#
#   systemd/package.sh OUTDIR VERSION DEB_ARCH BINARY
#
# VERSION is the build version (git describe); DEB_ARCH is amd64, arm64 or
# armhf. Writes OUTDIR/runnel_<debversion>_<arch>.deb and
# OUTDIR/runnel-<version>-linux-<arch>.tar.gz (same files, for boxes
# without dpkg). Needs dpkg-deb, gzip, tar; `make package` calls it for
# every architecture.
#
# Package layout (owners root:root; the runnel user and /var/lib/runnel are
# made by postinst through systemd-sysusers and systemd-tmpfiles):
#   /usr/bin/runnel                         0755
#   /usr/lib/systemd/system/runnel.service  0644  enabled by nobody but the operator
#   /usr/lib/sysusers.d/runnel.conf         0644
#   /usr/lib/tmpfiles.d/runnel.conf         0644
#   /etc/runnel/runnel.yaml                 0644  conffile, commented defaults
#   /usr/share/man/man1/runnel.1.gz         0644
#   /usr/share/doc/runnel/{copyright,changelog.gz}
# The tarball adds INSTALL (the steps without dpkg) at its top.
#   /usr/share/lintian/overrides/runnel     each override explained in it
set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: $0 OUTDIR VERSION DEB_ARCH BINARY" >&2
	exit 2
fi
out=$1 version=$2 arch=$3 bin=$4
here=$(cd "$(dirname "$0")" && pwd)

case "$arch" in
amd64) tarch=amd64 ;;
arm64) tarch=arm64 ;;
armhf) tarch=armv7 ;;
*) echo "package.sh: unknown architecture $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
esac

# A Debian version must start with a digit: a tag v1.2.3-4-gabc gives
# 1.2.3+4.gabc; an untagged build 0~git<hash> (sorts before any release).
if [[ $version =~ ^v?[0-9]+\.[0-9] ]]; then
	debver=$(echo "${version#v}" | sed 's/-/+/; s/-/./g')
else
	debver="0~git$(echo "$version" | sed 's/[^A-Za-z0-9.+~]/./g')"
fi
maintainer=${MAINTAINER:-runnel maintainers <runnel@example.org>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/runnel-$version-linux-$tarch
umask 022

install -D -m 0755 "$bin" "$root/usr/bin/runnel"
install -D -m 0644 "$here/runnel.service" "$root/usr/lib/systemd/system/runnel.service"
install -D -m 0644 "$here/runnel.sysusers.conf" "$root/usr/lib/sysusers.d/runnel.conf"
install -D -m 0644 "$here/runnel.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/runnel.conf"
install -D -m 0644 "$here/runnel.yaml" "$root/etc/runnel/runnel.yaml"
install -d -m 0755 "$root/usr/share/man/man1" "$root/usr/share/doc/runnel" "$root/usr/share/lintian/overrides"
gzip -9n <"$here/runnel.1" >"$root/usr/share/man/man1/runnel.1.gz"
install -m 0644 "$here/deb/copyright" "$root/usr/share/doc/runnel/"
install -m 0644 "$here/deb/lintian-overrides" "$root/usr/share/lintian/overrides/runnel"
{
	echo "runnel ($debver) unstable; urgency=medium"
	echo
	echo "  * Build $version of runnel."
	echo
	echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$root/usr/share/doc/runnel/changelog.gz"
chmod 0644 "$root/usr/share/man/man1/runnel.1.gz" "$root/usr/share/doc/runnel/changelog.gz"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
install -m 0644 "$here/deb/INSTALL" "$root/INSTALL"
touch -d "@$SOURCE_DATE_EPOCH" "$root/INSTALL"
tarball="$out/runnel-$version-linux-$tarch.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
	-C "$stage" -cf - "$(basename "$root")" | gzip -9n >"$tarball"

rm "$root/INSTALL"
install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: runnel
Version: $debver
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser
Section: net
Priority: optional
Homepage: https://github.com/runnel/runnel
Description: durable site event log for edge gateways (Kafka, MQTT, forwarding)
 runnel turns an edge box (a factory gateway, a wind-farm controller) into
 the site's event log: MQTT 3.1.1/5 and Kafka wire protocol ingest into a
 crash-safe partitioned log on local disk, forwarded to a central Kafka
 cluster or MQTT broker whenever the uplink is up. An acknowledgement means
 the event is on stable storage.
 .
 The package installs the binary, a hardened systemd unit (not enabled),
 the runnel system user and /var/lib/runnel, and a commented
 /etc/runnel/runnel.yaml.
CONTROL
echo /etc/runnel/runnel.yaml >"$root/DEBIAN/conffiles"
install -m 0755 "$here/deb/postinst" "$here/deb/prerm" "$here/deb/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
deb="$out/runnel_${debver}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
echo "$tarball"
