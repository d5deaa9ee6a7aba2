#!/usr/bin/env bash
# Regenerates the speech samples committed in ptt_client/samples/ (used by the simulator and the
# voice tests). Needs espeak-ng and sox (apt-get install espeak-ng sox). The output is committed,
# so this only runs when a sample changes; espeak-ng 1.51 + sox 14.4.2 give byte-identical files.
#
# Each sample: espeak-ng speaks a radio call (its own voice and speed) at 22.05 kHz; sox converts
# it to 16 kHz mono 16-bit, normalises the peak to -3 dBFS and pads 50 ms of silence both ends.
# `-D` turns off sox's random dither so that reruns reproduce the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=ptt_client/samples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make_sample() {  # name voice words-per-minute pitch text
  local name=$1 voice=$2 speed=$3 pitch=$4 text=$5
  espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/$name.wav" "$text"
  sox -D "$tmp/$name.wav" -r 16000 -c 1 -b 16 "$out/$name.wav" \
    gain -n -3 pad 0.05 0.05
  printf '%-22s %s s\n' "$name.wav" "$(soxi -D "$out/$name.wav")"
}

make_sample backup_request en-us+m3 230 45 \
  "Control, unit four two, on scene, requesting backup."
make_sample traffic_stop en-gb+f2 210 60 \
  "Unit seven, traffic stop, blue van, Harbour Road."
make_sample all_clear en-us+m7 220 35 \
  "Dispatch to all units, area clear."
make_sample medical en-gb-scotland+f4 195 55 \
  "Ambulance to the north gate, one injured."
