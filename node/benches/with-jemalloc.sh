#!/bin/sh
# Runs a command with jemalloc as its allocator (Debian's libjemalloc2), for the memory
# benchmark's comparison of allocators:
#   CAILLOUX_MEMORY_WRAP=node/benches/with-jemalloc.sh cargo bench -p cailloux-node --bench memory
# Two arenas, as the node caps glibc's; freed pages returned after about a second.
lib=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ ! -e "$lib" ]; then
  echo "with-jemalloc.sh: $lib is missing: apt-get install libjemalloc2" >&2
  exit 1
fi
LD_PRELOAD=$lib MALLOC_CONF="background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:2" exec "$@"
