#!/usr/bin/env bash
# Rebuild the web pages' committed static assets from the npm registry, so that a fresh clone needs no Node:
#   - issuer/static/sgds/: the Scottish Government Design System's built CSS and JS (MIT, Crown Copyright),
#   - issuer/static/fonts/: Roboto latin 400/700 woff2 (@fontsource/roboto, SIL OFL 1.1), the design system's font,
#   - tests/assets/axe.min.js: axe-core (MPL-2.0) for the accessibility checks in the browser tests.
# Usage: scripts/build-assets.sh   (needs node + npm; writes only the files listed above)
set -euo pipefail
cd "$(dirname "$0")/.."
SGDS_VERSION="${SGDS_VERSION:-4.2.0}"
ROBOTO_VERSION="${ROBOTO_VERSION:-5.3.0}"
AXE_VERSION="${AXE_VERSION:-4.14.1}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
  "@scottish-government/design-system@$SGDS_VERSION" "@fontsource/roboto@$ROBOTO_VERSION" "axe-core@$AXE_VERSION")
sg="$scratch/node_modules/@scottish-government/design-system"
mkdir -p issuer/static/sgds issuer/static/fonts tests/assets
cp "$sg/dist/css/design-system.min.css" issuer/static/sgds/design-system.min.css
cp "$sg/dist/scripts/design-system.js" issuer/static/sgds/design-system.js
cp "$sg/LICENSE.txt" issuer/static/sgds/LICENSE.txt
cp "$sg/dist/images/icons/icons.stack.svg" issuer/static/sgds/icons.stack.svg
for w in 400 700; do
  cp "$scratch/node_modules/@fontsource/roboto/files/roboto-latin-$w-normal.woff2" issuer/static/fonts/
done
cp "$scratch/node_modules/@fontsource/roboto/LICENSE" issuer/static/fonts/LICENSE-Roboto.txt
cp "$scratch/node_modules/axe-core/axe.min.js" tests/assets/axe.min.js
cp "$scratch/node_modules/axe-core/LICENSE" tests/assets/LICENSE-axe-core.txt
echo "static assets rebuilt: SG Design System $SGDS_VERSION, Roboto $ROBOTO_VERSION, axe-core $AXE_VERSION"
