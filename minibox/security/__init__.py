"""Docker-format seccomp profiles: the bundled default and its conversion to OCI."""
