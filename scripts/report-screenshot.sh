#!/usr/bin/env bash
# Screenshot of the benchmark's HTML report, for looking at by hand:
#   scripts/report-screenshot.sh [DIR]      (DIR defaults to bench-report)
# loads DIR/index.html in headless Chromium and writes DIR/screenshot.png,
# and copies the charts out of the page as DIR/latency.svg,
# DIR/throughput.svg and, when the run has them, DIR/rtt-size.svg (round
# trips by size, the loan curve) and DIR/fan-in.svg (standalone images,
# e.g. for a README).
# Needs Debian's `chromium` (apt-get install chromium) or CHROMIUM=/path/to/browser.
set -euo pipefail
dir=${1:-bench-report}
page=$(cd "$dir" 2>/dev/null && pwd)/index.html || true
if [ ! -f "$page" ]; then
  echo "report-screenshot: no $dir/index.html; run \`cargo run --release -- bench --out $dir\` first" >&2
  exit 1
fi
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
  echo "report-screenshot: chromium not found; install it (apt-get install chromium) or set CHROMIUM" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
out=$(dirname "$page")/screenshot.png
# A fresh profile, no network chatter; killed if it hangs.
timeout --kill-after=5 60 "$browser" --headless --no-sandbox --disable-gpu \
  --disable-dev-shm-usage --disable-quic --no-first-run --no-default-browser-check \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-extensions --hide-scrollbars --user-data-dir="$profile" \
  --window-size="${WINDOW_SIZE:-1280,2400}" --screenshot="$out" "file://$page" \
  >/dev/null 2>"$profile/stderr" || { cat "$profile/stderr" >&2; exit 1; }
[ -s "$out" ] || { echo "report-screenshot: no screenshot written" >&2; exit 1; }
echo "$out"
# Each chart is one line of index.html.
for chart in latency throughput rtt-size fan-in; do
  svg=$(dirname "$page")/$chart.svg
  if grep -o "<svg [^>]*id=\"$chart-chart\".*</svg>" "$page" >"$svg"; then
    echo "$svg"
  else
    rm -f "$svg"
  fi
done
