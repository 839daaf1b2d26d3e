#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages ebpf-receiver needs, only those missing (idempotent).
#   scripts/install-deps.sh run    # build + run: clang, llvm, libbpf, bpftool
#   scripts/install-deps.sh test   # + the real servers and clients the tests drive
set -euo pipefail
profile=${1:-run}

run_pkgs=(clang llvm libbpf-dev libbpf1 bpftool make python3-venv ca-certificates
          gcc python3-dev)  # the compiled modules (setup.py)
test_pkgs=(nginx-light redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client
           memcached nats-server rabbitmq-server dnsmasq
           prometheus curl wrk openssl iproute2 conntrack iptables procps iputils-ping
           chromium chromium-driver
           util-linux  # setpriv: tests/e2e/test_least_privilege.py
           golang-go golang-google-grpc-dev libssl-dev)  # Go crypto/tls and gRPC-Go servers, static OpenSSL server; go tool pprof reads the profiles

pkgs=("${run_pkgs[@]}")
[ "$profile" = test ] || [ "$profile" = bench ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Ubuntu ships bpftool in linux-tools; accept any bpftool on PATH.
if command -v bpftool >/dev/null 2>&1; then
  missing=("${missing[@]/bpftool}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} — run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Servers must not start (or stay up) as system services: the tests start their own instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$created_policy" = 1 ] && rm -f "$policy"
echo "install-deps: done"
