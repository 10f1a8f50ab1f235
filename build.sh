#!/usr/bin/env bash
# Publishes the Native AOT binary to dist/edgeproxy (trimmed, invariant globalization, warnings as errors).
#   ./build.sh            -> dist/edgeproxy
#   RID=linux-musl-x64 ./build.sh   (Alpine; needs musl-gcc / a musl sysroot, used by Dockerfile.alpine)
#   RID=linux-arm64 OUT=dist-arm64 ./build.sh -p:CppCompilerAndLinker=clang-14 -p:LinkerFlavor=lld -p:ObjCopyName=llvm-objcopy-14
#     (cross-build on x64 Debian 12: apt-get install clang-14 lld-14 llvm-14 libc6-dev-arm64-cross libgcc-12-dev-arm64-cross)
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
