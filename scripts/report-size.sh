#!/bin/sh
# Called by the build: writes a stripped copy of the binary and prints its size.
set -e
strip_prog=$1 input=$2 output=$3
"$strip_prog" -o "$output" "$input"
size=$(wc -c < "$output")
echo "dstack: stripped size $size bytes ($((size / 1024)) KiB), unstripped $(wc -c < "$input") bytes"
