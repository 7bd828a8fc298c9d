#!/bin/sh
# Called by the build: writes a stripped copy of the binary and prints its size and P-256 engine.
set -e
strip_prog=$1 input=$2 output=$3 engine=${4:-unknown}
"$strip_prog" -o "$output" "$input"
size=$(wc -c < "$output")
echo "dstack: stripped size $size bytes ($((size / 1024)) KiB), unstripped $(wc -c < "$input") bytes, P-256 engine $engine"
