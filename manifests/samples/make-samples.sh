#!/usr/bin/env bash
# Regenerate the sample clips (see README.md). Needs ffmpeg with libx264; byte-identical output
# for the same ffmpeg build (single-threaded encoder, bit-exact flags, no metadata).
set -euo pipefail
cd "$(dirname "$0")"

make_clip() { # OUTPUT LAVFI_SOURCE SINE_HZ
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "$2=size=720x1280:rate=30" \
    -f lavfi -i "sine=frequency=$3:sample_rate=44100" \
    -map 0:v -map 1:a -t 4 \
    -c:v libx264 -preset medium -profile:v high -pix_fmt yuv420p -b:v 450k -threads 1 \
    -c:a aac -b:a 64k -ac 1 \
    -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
    -movflags +faststart "$1"
}

make_clip clip-a.mp4 testsrc2 440
make_clip clip-b.mp4 testsrc 660
make_clip clip-c.mp4 mandelbrot 880
