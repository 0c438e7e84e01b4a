#!/usr/bin/env bash
# Start the PART Studio API and the dashboard together; Ctrl-C stops both, and so does the dashboard ending.
# The dashboard stays up when the API stops, and says so on every page.
#   PART_PORT (8000)  PART_UI_PORT (8501)  PART_UI_HOST (127.0.0.1)  PART_CHECKPOINTS (checkpoints)  VENV (.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
API_PORT=${PART_PORT:-8000}
UI_PORT=${PART_UI_PORT:-8501}
UI_HOST=${PART_UI_HOST:-127.0.0.1}
CHECKPOINTS=${PART_CHECKPOINTS:-checkpoints}
export PART_API_URL=${PART_API_URL:-http://127.0.0.1:$API_PORT}

api_pid="" ui_pid=""
stop() {
  trap - INT TERM EXIT
  for pid in $api_pid $ui_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped the API and the dashboard"
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

"$VENV/bin/part" serve --port "$API_PORT" --checkpoints "$CHECKPOINTS" &
api_pid=$!

healthy() {
  "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/api/health', timeout=2)" \
    "$PART_API_URL" 2>/dev/null
}
echo "waiting for the API on $PART_API_URL ..."
for _ in $(seq 1 180); do
  healthy && break
  kill -0 "$api_pid" 2>/dev/null || { echo "the API did not start (see above)"; exit 1; }
  sleep 1
done
healthy || { echo "the API did not answer $PART_API_URL/api/health in 180 s"; exit 1; }

"$VENV/bin/streamlit" run frontend/app.py --server.address "$UI_HOST" --server.port "$UI_PORT" --server.headless true \
  --browser.gatherUsageStats false --client.toolbarMode viewer &
ui_pid=$!
echo "PART Studio: dashboard http://$UI_HOST:$UI_PORT  API $PART_API_URL/docs  (Ctrl-C stops both)"
# The dashboard outlives the API: it shows its own "backend not available" banner until the API is back
# (`part serve --port $API_PORT` in another terminal). The script ends with the dashboard, or on Ctrl-C.
while kill -0 "$ui_pid" 2>/dev/null; do
  ended=""
  wait -n -p ended $api_pid $ui_pid || true
  if [ -n "$ended" ] && [ "$ended" = "$api_pid" ]; then
    echo "the API stopped; the dashboard stays up at http://$UI_HOST:$UI_PORT (Ctrl-C stops it)"
    api_pid=""
  fi
  if [ "$ended" = "$ui_pid" ]; then break; fi
done
