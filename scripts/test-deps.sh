#!/usr/bin/env bash
# What the browser and identity tests need beyond Python: Debian's chromium and
# chromium-driver (selenium drives them), slapd (a real LDAP directory started by the
# tests), and axe-core from npm (injected into each page for accessibility checks).
# Installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null || need+=(ldap-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
fi
# slapd's package starts a system directory we do not use; the tests run their own.
if pgrep -x slapd >/dev/null && [ -f /var/run/slapd/slapd.pid ]; then
  kill "$(cat /var/run/slapd/slapd.pid)" 2>/dev/null || true
fi

if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  echo "test-deps: installing axe-core"
  (cd tests/browser && npm install --no-package-lock --silent --no-audit --no-fund axe-core@4 >/dev/null)
fi
