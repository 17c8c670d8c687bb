#!/usr/bin/env bash
# Rebuilds data/kjv.txt.zst, the demo's corpus, from Debian 12's bible-kjv packages (run by hand; the
# demo never needs it). The packages are downloaded and unpacked here, not installed.
#
#   bash scripts/make_kjv_corpus.sh      then compare the printed digests with data/README.md's
#
# The text is the package's `bible` program's dump of the whole book with one verse per line (-l with a
# huge width: no line breaks inside a verse), the verse numbers dropped, the "Book N" chapter headings
# kept between blank lines.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download bible-kjv bible-kjv-text
for deb in bible-kjv_*.deb bible-kjv-text_*.deb; do dpkg-deb -x "$deb" pkg; done
pkg/usr/bin/bible -l 100000 -p "$PWD/pkg/usr/lib" Gen1:1-Rev22:21 | sed '1{/^$/d}; s/^  [0-9]* //' >kjv.txt
zstd -19 -q kjv.txt -o "$root/data/kjv.txt.zst" -f
sha256sum kjv.txt "$root/data/kjv.txt.zst"
