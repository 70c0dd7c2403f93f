#!/bin/sh
# Container start: fetch the model bundles listed in the manifest when ITFF_ARTIFACT_BASE_URL is set (each file's
# sha256 is checked; a bad download stops the container), then run the service.
set -e
if [ -n "$PROMETHEUS_MULTIPROC_DIR" ]; then mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db; fi   # fresh counts per start
if [ -n "$ITFF_ARTIFACT_BASE_URL" ]; then
  itff-sync-artifacts --manifest "${ITFF_ARTIFACT_MANIFEST:-/app/deploy/artifacts.manifest.json}" --root "${ITFF_HOME:-/srv/itff}" --overwrite
fi
exec "$@"
