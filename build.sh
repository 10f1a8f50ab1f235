#!/usr/bin/env bash
# Publishes the Native AOT binary to dist/edgeproxy (trimmed, invariant globalization, warnings as errors).
#   ./build.sh            -> dist/edgeproxy
#   RID=linux-musl-x64 ./build.sh   (Alpine; needs musl-gcc / a musl sysroot, used by Dockerfile.alpine)
set -euo pipefail
cd "$(dirname "$0")"
RID="${RID:-linux-x64}"
OUT="${OUT:-dist}"
dotnet publish src/EdgeProxy/EdgeProxy.csproj -c Release -r "$RID" -o "$OUT/.publish" \
  -p:TreatWarningsAsErrors=true -p:IlcTreatWarningsAsErrors=true -p:SuppressTrimAnalysisWarnings=false -nologo "$@"
mkdir -p "$OUT"
cp "$OUT/.publish/edgeproxy" "$OUT/edgeproxy"
rm -rf "$OUT/.publish"
ls -l "$OUT/edgeproxy" | awk '{printf "built %s (%.1f MB)\n", $9, $5/1048576}'
