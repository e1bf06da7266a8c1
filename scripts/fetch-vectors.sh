#!/usr/bin/env bash
# Downloads test vectors that are not in the repository (and must not be copied into it)
# into .vectors/: NIST PKITS from the pyhanko-certvalidator source distribution.
# The RFC 9162 and ADULT vectors are read in place from ../shared/vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.vectors
if [ -f "$dest/nist_pkits/pkits.json" ]; then
  echo "vectors: NIST PKITS already in $dest/nist_pkits"
  exit 0
fi
mkdir -p "$dest/download"
python3 -m pip download --quiet --no-deps --no-binary :all: pyhanko-certvalidator==0.33.0 -d "$dest/download"
tar -xzf "$dest/download"/pyhanko_certvalidator-0.33.0.tar.gz -C "$dest/download"
rm -rf "$dest/nist_pkits"
cp -r "$dest/download/pyhanko_certvalidator-0.33.0/tests/fixtures/nist_pkits" "$dest/nist_pkits"
rm -rf "$dest/download"
echo "vectors: NIST PKITS in $dest/nist_pkits ($(ls "$dest/nist_pkits/certs" | wc -l) certificates)"
