#!/usr/bin/env bash
# What the browser test of export.py --web needs, set up where it can be: Chromium from the
# system's packages (if this user may install them) and onnxruntime-web from npm (package.json
# and package-lock.json pin it). Never fails: without either, that test is skipped and says why.
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -q chromium >/dev/null 2>&1 ||
     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) ||
      echo "browser_setup: could not install chromium; the browser test will be skipped"
  else
    echo "browser_setup: no chromium (apt-get install chromium); the browser test will be skipped"
  fi
fi
if command -v npm >/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null ||
    echo "browser_setup: npm ci failed; the browser test will be skipped"
else
  echo "browser_setup: no npm (install Node.js); the browser test will be skipped"
fi
exit 0
