"""minibox build: Dockerfile parsing, .dockerignore, the build context and the layer cache.

The pure parts (dockerfile, ignore, context, cache) make no syscalls beyond
reading the context and the cache index, so they are unit-tested without
root; the builder that runs steps in containers sits on top of them.
"""
