#!/usr/bin/env bash
# Start the PART Studio API and the dashboard together; Ctrl-C stops both.
#   PART_PORT (8000)  PART_UI_PORT (8501)  PART_UI_HOST (127.0.0.1)  PART_CHECKPOINTS (checkpoints)  VENV (.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
API_PORT=${PART_PORT:-8000}
UI_PORT=${PART_UI_PORT:-8501}
UI_HOST=${PART_UI_HOST:-127.0.0.1}
CHECKPOINTS=${PART_CHECKPOINTS:-checkpoints}
export PART_API_URL=${PART_API_URL:-http://127.0.0.1:$API_PORT}

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped the API and the dashboard"
}
trap stop INT TERM EXIT

"$VENV/bin/part" serve --port "$API_PORT" --checkpoints "$CHECKPOINTS" &
pids+=($!)

healthy() {
  "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/api/health', timeout=2)" \
    "$PART_API_URL" 2>/dev/null
}
echo "waiting for the API on $PART_API_URL ..."
for _ in $(seq 1 180); do
  healthy && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "the API did not start (see above)"; exit 1; }
  sleep 1
done
healthy || { echo "the API did not answer $PART_API_URL/api/health in 180 s"; exit 1; }

"$VENV/bin/streamlit" run frontend/app.py --server.address "$UI_HOST" --server.port "$UI_PORT" --server.headless true \
  --browser.gatherUsageStats false --client.toolbarMode viewer &
pids+=($!)
echo "PART Studio: dashboard http://$UI_HOST:$UI_PORT  API $PART_API_URL/docs  (Ctrl-C stops both)"
wait -n "${pids[@]}"
