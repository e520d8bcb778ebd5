#!/usr/bin/env bash
# The main job on the built-in sandbox: fake vendor APIs with faults switched on, a
# first run that ends with failures, a resume that finishes the work, a kill -9 in
# the middle of a run, and the status. No vendor account needed.
#
#   ./examples/demo.sh [path/to/provision] [plan]
set -euo pipefail
BIN=${1:-bin/provision}
PLAN=${2:-examples/plans/rollout.yaml}
PORT=${DEMO_PORT:-18700}
WORK=$(mktemp -d)
STATE=$WORK/demo.db
trap 'kill $SANDBOX_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Demo credentials: the sandbox accepts whatever the plan resolves.
source "$(dirname "$0")/demo.env"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. validate $PLAN"
"$BIN" validate "$PLAN"

say "2. start the sandbox (5xx 5%, 429 5%, dropped connections 1%, lost answers 2%)"
"$BIN" sandbox "$PLAN" --listen 127.0.0.1:$PORT \
  --fault-5xx 0.05 --fault-429 0.05 --fault-retry-after 1s --fault-drop 0.01 --fault-lost 0.02 \
  > "$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 50); do grep -q "serving on" "$WORK/sandbox.log" 2>/dev/null && break; sleep 0.1; done
cat "$WORK/sandbox.log"
URL=http://127.0.0.1:$PORT
COMMON=(--sandbox-url "$URL" --state "$STATE" --progress-interval 2s --yes)

say "3. dry run"
"$BIN" plan "$PLAN" "${COMMON[@]:0:4}" --summary

say "4. apply with a one-attempt budget: faults make some tasks fail, their dependents are skipped"
set +e
"$BIN" apply "$PLAN" "${COMMON[@]}" --max-attempts 1 --log-level warn --ui 127.0.0.1:0   # prints the URL of its live page; opens nothing
rc=$?
set -e
echo "exit code: $rc (1 = some tasks failed)"

say "5. the state says"
"$BIN" status "$PLAN" "${COMMON[@]:0:4}" > "$WORK/status.txt"; head -12 "$WORK/status.txt"

say "6. resume, killed with SIGKILL after 1 s"
"$BIN" apply "$PLAN" "${COMMON[@]}" --log-level error > "$WORK/killed.log" 2>&1 &
APPLY_PID=$!
sleep 1
kill -9 $APPLY_PID 2>/dev/null || true
wait $APPLY_PID 2>/dev/null || true
echo "killed; the state says:"
"$BIN" status "$PLAN" "${COMMON[@]:0:4}" > "$WORK/status.txt"; head -8 "$WORK/status.txt"

# until_done CMD...: reruns a command while it exits 1 (some tasks failed under the
# faults), as an operator would; any other failure ends the demo.
until_done() {
  for attempt in 1 2 3; do
    set +e
    "$@"
    rc=$?
    set -e
    [ $rc -eq 0 ] && return 0
    [ $rc -ne 1 ] && exit $rc
    echo "exit code $rc: rerunning"
  done
  echo "did not complete: $*"; exit 1
}

say "7. resume again: same command, retries on (an operator reruns until it says done)"
until_done "$BIN" apply "$PLAN" "${COMMON[@]}" --log-level error --max-attempts 10

say "8. status"
"$BIN" status "$PLAN" "${COMMON[@]:0:4}"

say "9. what the fake vendors hold (duplicates and orphans must be empty)"
if command -v curl >/dev/null; then curl -fsS "$URL/_sandbox/report"; else echo "(curl not installed: open $URL/_sandbox/report)"; fi

say "10. the rehearsal and the real run are kept apart: this state belongs to the sandbox"
echo "provision plan $PLAN --state $STATE   (the plan's real endpoints, the sandbox's state)"
set +e
"$BIN" plan "$PLAN" --state "$STATE" --summary > "$WORK/target.log" 2>&1
rc=$?
set -e
head -5 "$WORK/target.log"
echo "exit code: $rc (2 = refused before any request)"
[ $rc -eq 2 ] || { echo "a run against other endpoints accepted the sandbox's state"; exit 1; }

say "11. a store leaves stores.csv: plan lists its tasks as remove, apply --prune deletes them"
PLANS=$WORK/plans
cp -r "$(dirname "$PLAN")" "$PLANS"
PLAN2=$PLANS/$(basename "$PLAN")
gone=$(tail -n 1 "$PLANS/stores.csv" | cut -d, -f1)
sed -i '$d' "$PLANS/stores.csv"
echo "store $gone removed from the CSV"
"$BIN" plan "$PLAN2" "${COMMON[@]:0:4}" | grep -E '^  remove|to remove' || true
until_done "$BIN" apply "$PLAN2" "${COMMON[@]}" --prune --log-level error --max-attempts 10

site=$(tail -n 1 "$PLANS/stores.csv" | cut -d, -f1)
say "12. decommission one site: destroy store-$site and what depends on it"
"$BIN" destroy "$PLAN2" "${COMMON[@]:0:4}" --only "store-$site" --dry-run
until_done "$BIN" destroy "$PLAN2" "${COMMON[@]}" --only "store-$site" --log-level error --max-attempts 10
"$BIN" plan "$PLAN2" "${COMMON[@]:0:4}" --summary | tail -1

say "13. what the fake vendors hold now"
if command -v curl >/dev/null; then curl -fsS "$URL/_sandbox/report"; else echo "(curl not installed: open $URL/_sandbox/report)"; fi
