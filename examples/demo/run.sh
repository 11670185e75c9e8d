#!/usr/bin/env bash
# Serves three synthetic cameras locally and runs the exporter against them,
# with snapshots on, and with the detector when `make models` has fetched it.
# Prints one line per camera, then leaves the exporter running.
set -euo pipefail
cd "$(dirname "$0")/../.."
exporter=${1:-./camera_exporter}
port=${DEMO_PORT:-9845}
models=${DEMO_MODELS:-models/yolo-fastest-1.1}

config=examples/demo/exporter.yml
if [ -f "$models/yolo-fastest-1.1.weights" ]; then
  config=$(mktemp /tmp/camera-exporter-demo.XXXXXX.yml)
  cat > "$config" <<EOF
detector:
  model: $PWD/$models/yolo-fastest-1.1.weights
  config: $PWD/$models/yolo-fastest-1.1.cfg
  labels: $PWD/$models/coco.names
  input_size: 320
EOF
  # Workers, as on a site: a person count for every camera, 0 when none.
  sed 's/^defaults:$/defaults:\n  detect:\n    classes: [person]/' examples/demo/exporter.yml >> "$config"
  echo "Detector: $models"
else
  echo "No detector: run 'make models' first to see detections too."
fi

go build -o /tmp/camera-exporter-demo-rtsp-server ./examples/rtsp-server
/tmp/camera-exporter-demo-rtsp-server &
server=$!
"$exporter" --config.file="$config" --web.listen-address=":$port" --web.enable-snapshots &
exporter_pid=$!
trap 'kill $exporter_pid $server 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

metrics() { curl -sf "localhost:$port/metrics" || true; }
for _ in $(seq 1 60); do
  analyzed=$(metrics | grep -c '^camera_frame_brightness_ratio' || true)
  [ "$analyzed" -ge 3 ] && break
  sleep 1
done

# Frame rates from two scrapes, about 2 s apart.
t0=$(date +%s%N)
before=$(metrics)
sleep 2
t1=$(date +%s%N)
after=$(metrics)
echo
printf '%-14s %-4s %6s %10s %6s %-18s %6s\n' camera up fps brightness dark detections drift
{ echo "$before" | sed 's/^/before /'; echo "$after" | sed 's/^/after /'; } | awk -v ms="$(((t1 - t0) / 1000000))" '
  function camera(s) { match(s, /camera="[^"]*"/); return substr(s, RSTART + 8, RLENGTH - 9) }
  function label(s, name,   r) { r = name "=\"[^\"]*\""; match(s, r); return substr(s, RSTART + length(name) + 2, RLENGTH - length(name) - 3) }
  $1 == "before" && $2 ~ /^camera_frames_received_total\{/ { frames0[camera($2)] = $3 }
  $1 != "after" { next }
  $2 ~ /^camera_up\{/ { cams[camera($2)] = 1; up[camera($2)] = $3 }
  $2 ~ /^camera_frames_received_total\{/ { frames1[camera($2)] = $3 }
  $2 ~ /^camera_frame_brightness_ratio\{/ { bright[camera($2)] = $3 }
  $2 ~ /^camera_frame_dark_pixels_ratio\{/ { dark[camera($2)] = $3 }
  $2 ~ /^camera_detected_objects\{/ { c = camera($2); det[c] = det[c] (det[c] == "" ? "" : ",") label($2, "class") "=" $3 }
  $2 ~ /^camera_drift_combined_score\{/ { drift[camera($2)] = $3 }
  END {
    for (c in cams) {
      printf "%-14s %-4s %6.1f %10s %6s %-18s %6s\n", c, (up[c] == 1 ? "yes" : "no"), (frames1[c] - frames0[c]) * 1000 / ms,
        (c in bright ? sprintf("%.2f", bright[c]) : "-"), (c in dark ? sprintf("%.0f%%", 100 * dark[c]) : "-"),
        (c in det ? det[c] : "-"), (c in drift ? sprintf("%.2f", drift[c]) : "-")
    }
  }' | sort
echo
echo "What the cameras see: http://localhost:$port/cameras"
echo "Metrics:              http://localhost:$port/metrics"
echo "Exporter running - press Ctrl-C to stop."
wait $exporter_pid
