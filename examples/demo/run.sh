#!/usr/bin/env bash
# Serves three synthetic cameras locally and runs the exporter against them.
set -euo pipefail
cd "$(dirname "$0")/../.."
exporter=${1:-./camera_exporter}
port=${DEMO_PORT:-9845}

go build -o /tmp/camera-exporter-demo-rtsp-server ./examples/rtsp-server
/tmp/camera-exporter-demo-rtsp-server &
server=$!
"$exporter" --config.file=examples/demo/exporter.yml --web.listen-address=":$port" &
exporter_pid=$!
trap 'kill $exporter_pid $server 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 60); do
  analyzed=$(curl -sf "localhost:$port/metrics" | grep -c '^camera_frame_brightness_ratio' || true)
  [ "$analyzed" -ge 3 ] && break
  sleep 1
done
echo
echo "== camera metrics at http://localhost:$port/metrics =="
curl -s "localhost:$port/metrics" | grep -E '^camera_(up|info|frame_|frames_received)'
echo
echo "Exporter running on http://localhost:$port/ - press Ctrl-C to stop."
wait $exporter_pid
