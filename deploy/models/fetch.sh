#!/bin/sh
# Downloads the detector models listed in SHA256SUMS into DEST and checks
# each file's sha256. A file that fails the check is deleted, and the
# script fails; files already there and good are not downloaded again.
#
#   fetch.sh DEST BASE_URL
set -eu

[ $# -eq 2 ] || { echo "usage: $0 DEST BASE_URL" >&2; exit 2; }
dest=$1
base=${2%/}
sums=$(dirname "$0")/SHA256SUMS

grep -v '^#' "$sums" | while read -r sum path upstream; do
	file=$dest/$path
	if [ -f "$file" ] && echo "$sum  $file" | sha256sum --check --status; then
		echo "$file: OK (already there)"
		continue
	fi
	mkdir -p "$(dirname "$file")"
	curl --fail --silent --show-error --location --output "$file.part" "$base/$upstream"
	if ! echo "$sum  $file.part" | sha256sum --check --status; then
		rm -f "$file.part"
		echo "$base/$upstream: sha256 mismatch, want $sum" >&2
		exit 1
	fi
	mv "$file.part" "$file"
	echo "$file: OK"
done
