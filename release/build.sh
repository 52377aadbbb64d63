#!/usr/bin/env bash
# The release build of Eino, as the image ships it (Dockerfile) and as `make bench` measures it:
#
#   release/build.sh --product eino      # into .build-release/release/ (swift build options may follow)
#
# - The Swift runtime linked in (--static-swift-stdlib): the image needs no toolchain.
# - Start-up and serving code packed together. A sidecar runs ~2.5 MiB of its code, spread over
#   a 30 MiB .text, and the kernel maps file pages around each fault: 64 KiB, or on recent
#   kernels the whole page-cache folio (up to 2 MiB), so a spread-out working set becomes a
#   large resident one. Every function gets its own section and lld lays out the ones listed in
#   release/eino.order.gz (the functions a proxy ran, from release/orderfile.py) first; unlisted
#   functions keep working, only placed after. LLVM's function merging is off: it turned
#   identical functions into unnamed ones that no list can name. The private `.L` functions
#   (closure-context destructors) cannot be named either; release/private-functions.ld keeps
#   them together.
# - No --export-dynamic (the static runtime's link file asks for it; nothing here looks symbols
#   up at run time): 48,000 fewer dynamic symbols for the loader to search.
# - A position-independent executable (ASLR), its 140,000 relative relocations packed (RELR).
set -euo pipefail
cd "$(dirname "$0")/.."
# Unpacked beside the build directories (ignored by git), named by its content: swift build
# relinks when the path changes, so a new list is used and an unchanged one costs nothing.
order=".build-eino-$(sha256sum release/eino.order.gz | cut -c1-12).order"
[ -s "$order" ] || { gzip -dc release/eino.order.gz > "$order.new" && mv "$order.new" "$order"; }
compile=(-Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
         -Xswiftc -Xfrontend -Xswiftc -disable-llvm-merge-functions-pass)
link=(-Xswiftc -use-ld=lld -Xlinker --no-export-dynamic -Xlinker -z -Xlinker pack-relative-relocs
      -Xlinker --symbol-ordering-file="$order" -Xlinker --no-warn-symbol-ordering
      -Xlinker -T -Xlinker "$PWD/release/private-functions.ld")
# swift build does not rebuild objects when only compiler flags change: start over when they
# do, keeping the fetched dependencies.
scratch=.build-release
stamp="$scratch/eino-compile-flags"
if [ "$(cat "$stamp" 2>/dev/null)" != "${compile[*]}" ]; then
    mkdir -p "$scratch"
    find "$scratch" -mindepth 1 -maxdepth 1 ! -name checkouts ! -name repositories ! -name artifacts \
        ! -name workspace-state.json -exec rm -rf {} +
    echo "${compile[*]}" > "$stamp"
fi
exec swift build -c release --static-swift-stdlib --scratch-path "$scratch" "${compile[@]}" "${link[@]}" "$@"
