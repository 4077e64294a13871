# A thin front to the commands CI runs (.ci/run calls `make install` and the
# README's test command). Everything installs into a venv under /opt so that a
# stock Debian's PEP 668-guarded system Python is never touched.

PREFIX     ?= /opt/minibox
VENV       ?= $(PREFIX)/venv
PYTHON     ?= python3
BIN        ?= /usr/local/bin
MINIBOX_ROOT ?= /var/lib/minibox
APT_PACKAGES = busybox-static libcap-dev libseccomp-dev gcc libc6-dev python3-venv python3-dev \
               iproute2 iptables tar util-linux
# What the integration tests use beyond the runtime's own needs: a real registry
# and real images, and qemu for the cgroup v2 VM.
TEST_APT_PACKAGES = docker-registry skopeo umoci openssl zstd qemu-system-x86 dpkg-dev cpio runc
TEST_ARGS  ?=
# In the cgroup v2 VM (TCG: every minibox call costs seconds there): the cgroup
# driver and the CLI limits, the confinement (eBPF device filter, seccomp, caps,
# hygiene), plus namespace, overlay and network checks and the freezer under commit.
VM_TESTS   ?= tests/integration/test_cgroups_real.py tests/integration/test_resources.py \
              tests/integration/test_devices.py tests/integration/test_hygiene.py \
              tests/integration/test_confinement.py tests/integration/test_image_overlay.py \
              "tests/integration/test_run.py::test_ps_shows_only_the_container_and_sh_is_pid_1" \
              "tests/integration/test_run.py::test_network_none_has_only_loopback" \
              "tests/integration/test_run.py::test_own_uts_ipc_and_mount_namespaces" \
              "tests/integration/test_network.py::test_two_containers_on_a_user_network_reach_each_other" \
              "tests/integration/test_network.py::test_published_port_answers_on_localhost_and_from_another_container" \
              "tests/integration/test_lifecycle.py::test_commit_freezes_a_running_container_for_the_snapshot_only"

.PHONY: all deps test-deps venv install rootfs test unit lint clean bench vm-test parity

all: install

# Debian packages a clean machine lacks (skipped when all are present).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "make: installing $$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

test-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(TEST_APT_PACKAGES)"
	@# docker.io for tests/parity, which start their own private dockerd. The
	@# package's own daemon must not start: it would set iptables FORWARD to DROP.
	@if ! dpkg -s docker.io >/dev/null 2>&1; then \
	    guard=; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	        chmod +x /usr/sbin/policy-rc.d; guard=1; }; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io || true; \
	    [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

venv: $(VENV)/bin/python

# pip builds the C shim through cffi; pip's console script is replaced by the
# launcher (python -IS: see minibox/launcher.py), which is linked onto PATH.
LAUNCHER = $(VENV)/bin/python -I -m minibox.launcher $(VENV)/bin/minibox

install: deps venv rootfs
	$(VENV)/bin/pip install -q '.[test]'
	$(LAUNCHER)
	ln -sf $(VENV)/bin/minibox $(BIN)/minibox
	SOURCE_DATE_EPOCH=0 MINIBOX_ROOT=$(MINIBOX_ROOT) $(BIN)/minibox import -c 'CMD ["sh"]' rootfs/busybox.tar busybox:latest

rootfs: rootfs/busybox.tar

rootfs/busybox.tar: rootfs/build.sh
	sh rootfs/build.sh $@

# Tests run against the installed package (what a user runs), refreshed first:
# everything on this host, then the kernel-facing tests again in a cgroup v2 VM.
test: venv rootfs test-deps
	$(VENV)/bin/pip install -q --no-deps --force-reinstall '.[test]'
	$(LAUNCHER)
	$(VENV)/bin/pytest -q -ra $(TEST_ARGS) tests/unit tests/integration tests/parity
	$(VENV)/bin/python tests/vm/run.py -q -ra $(VM_TESTS)

unit: venv
	$(VENV)/bin/pip install -q --no-deps --force-reinstall .
	$(LAUNCHER)
	$(VENV)/bin/pytest -q -ra tests/unit

lint: venv
	$(VENV)/bin/pip install -q ruff
	$(VENV)/bin/ruff check minibox tests
	@! grep -rn --include='*.py' -E 'extractall\(|shell=True|os\.system\(' minibox || \
	    { echo "lint: banned call (tarfile.extractall, shell=True, os.system)"; exit 1; }

parity: venv rootfs test-deps
	$(VENV)/bin/pytest -q -ra tests/parity

# Benchmarks side by side with runc, crun and docker (installed from Debian when
# possible); results in bench/results/ (JSON, table, PNG chart). Not part of `test`.
bench: install
	-$(VENV)/bin/pip install -q matplotlib
	$(VENV)/bin/python -m bench --install-peers

vm-test: install test-deps
	$(VENV)/bin/python tests/vm/run.py -q -ra $(VM_TESTS)

clean:
	rm -rf build dist *.egg-info rootfs/busybox.tar minibox/_*.so minibox/_shim.[co] minibox/_caps.[co] \
	    minibox/_seccomp.[co] csrc/*.o minibox/libexec/minibox-monitor minibox/libexec/minibox-init
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
