"""The README's "Using it" section, walked as written: every shell block runs in order in one
bash process, in an empty directory, so a command the README shows that no longer works (a
renamed flag, a changed body, a missing step) fails here.

What the walk changes, and only that: servers (`cascade up`, `site-sim`, `worker`, `agent`,
`identity-replica`) run in the background until their port answers, a second `cascade up`
on the same data dir replaces the first, benchmarks get short settings appended (the last
value of a repeated option wins), bcrypt runs at cost 4, `OPERATION_ID` is the operation a
keypair POST returns, and a `curl` whose line ends in `# NNN` must answer NNN. Any command
that exits non-zero (but `identity rotate-keys` without --force, documented to exit 1 when a
site blocks) or prints a traceback fails the walk. Needs the README's fixed ports free, NATS
for the agent block, and root for its network namespace: it runs with CI=true.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTS = (5000, 5001, 5101, 5102)
NETNS = "compute-1"

SHORT = {  # subcommand -> flags appended to the README's
    "bench identity --replica": "--no-keystone --replicas 1 --changes 1 --rotations 1 "
    "--seconds 0.5 --rounds 4",
    "bench identity": "--seconds 0.5 --rounds 4 --connections 2",
    "bench site": "--seconds 0.5 --backup-mib 1",
    "bench engine": "--workers 1 --ops 10 --site-ops 0 --no-recovery",
    "bench fabric": "--sizes 1,100",
    "fleet-sim": "--hosts 100",
    "op wait": "--timeout 120",
}

PRELUDE = r"""
set -eo pipefail
export CASCADE_PASSWORD_HASH_ROUNDS=4  # Cascade's and the site-sims' stored passwords
W=$(mktemp -d ./walk.XXXX)
declare -A SERVER_PID
stop_servers() {
  for p in "${SERVER_PID[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do jobs -rp | grep -q . || return 0; sleep 0.1; done
  for p in "${SERVER_PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap stop_servers EXIT

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_of() {  # the --port of a command line, else the default
  local default=$1; shift
  while [ $# -gt 0 ]; do [ "$1" = --port ] && { echo "$2"; return; }; shift; done
  echo "$default"
}

serve() {  # kind default-port args...: start a server in the background, wait for its port
  local kind=$1 default=$2; shift 2
  if [ -n "${SERVER_PID[$kind]:-}" ] && [ "$kind" = up ]; then
    kill "${SERVER_PID[$kind]}"; wait "${SERVER_PID[$kind]}" || true
  fi
  local log="$W/$kind-$RANDOM.log"
  command cascade "$@" >"$log" 2>&1 &
  SERVER_PID[$kind]=$!
  [ "$default" = none ] && { sleep 2; return; }
  local port; port=$(port_of "$default" "$@")
  for _ in $(seq 1 600); do
    answers "$port" && return 0
    if ! kill -0 "${SERVER_PID[$kind]}" 2>/dev/null; then
      echo "walk: cascade $* exited:"; cat "$log"; return 1
    fi
    sleep 0.1
  done
  echo "walk: cascade $* did not listen on $port"; cat "$log"; return 1
}

cascade() {
  case "$1 $2" in
    "up "*) serve up 5000 "$@"; return ;;
    "site-sim "*) serve "site-sim-$RANDOM" 5101 "$@"; return ;;
    "identity-replica "*) serve replica 5001 "$@"; return ;;
    "worker "*) serve worker none "$@"; return ;;
    "agent "*) serve agent none "$@"; return ;;
  esac
  local extra="" allowed="0" words="$*" chosen=""
  for key in "${!SHORT[@]}"; do  # the longest subcommand that matches
    if [[ "$words " == "$key "* ]] && [ ${#key} -gt ${#chosen} ]; then
      extra=${SHORT[$key]}; chosen=$key
    fi
  done
  [[ "$words" == "identity rotate-keys"* && "$words" != *--force* ]] && allowed="0 1"
  local log="$W/cmd-$RANDOM.log" rc=0
  echo "walk: cascade $* $extra" >&2
  command cascade "$@" $extra >"$log" 2>&1 || rc=$?
  cat "$log"
  if grep -q Traceback "$log"; then echo "walk: traceback from cascade $*"; return 1; fi
  [[ " $allowed " == *" $rc "* ]] || { echo "walk: cascade $* exited $rc"; return 1; }
}

curl() {  # the status goes to $W/status for a following check_status
  local body="$W/body"
  command curl -o "$body" -w '%{http_code}' "$@" >"$W/status"
  cat "$body"; echo
}

check_status() {
  local got; got=$(cat "$W/status")
  [ "$got" = "$1" ] || { echo "walk: expected HTTP $1, got $got"; cat "$W/body"; return 1; }
}

walk_operation() {  # an operation to wait for: a keypair put at every site of the project
  command curl -s -X POST http://127.0.0.1:5000/v1/keypairs -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"name\": \"walk-$RANDOM\", \"public_key\": \"$(cat "$W/key.pub")\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["operation"]["id"])'
}
python3 -c 'from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
key = Ed25519PrivateKey.generate().public_key()
print(key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode())' >"$W/key.pub"
"""


def readme_blocks() -> list[str]:
    """The bash blocks of README.md's "Using it" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def walk_script() -> str:
    shorts = "\n".join(f'SHORT["{key}"]="{flags}"' for key, flags in SHORT.items())
    steps = []
    for block in readme_blocks():
        block = re.sub(r"[ \t]+#\s*(\d{3})[ \t]*$", r" ; check_status \1", block, flags=re.M)
        steps.append(block.replace("OPERATION_ID", '"$(walk_operation)"'))
    return "declare -A SHORT\n" + shorts + PRELUDE + "\n".join(steps) + "\necho walk: done\n"


def _port_busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(900)
def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("the README walk needs its fixed ports, NATS and root: runs with CI=true")
    busy = [port for port in PORTS if _port_busy(port)]
    assert not busy, f"the README's ports {busy} are taken"
    netns_before = Path(f"/run/netns/{NETNS}").exists()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        ["bash", "-c", walk_script()],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=840)
    finally:
        with_leftovers_killed(process)
        if not netns_before and Path(f"/run/netns/{NETNS}").exists():
            subprocess.run(["ip", "netns", "delete", NETNS], check=False)
    assert process.returncode == 0, output[-6000:]
    assert output.rstrip().endswith("walk: done")


def with_leftovers_killed(process: subprocess.Popen[str]) -> None:
    """Whatever the walk started and did not stop, stopped (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_the_walk_covers_every_block() -> None:
    """The walk reads the README itself: it finds the blocks and every server they start."""
    script = walk_script()
    assert len(readme_blocks()) >= 5
    for command in ("cascade up", "cascade site-sim", "cascade worker", "cascade agent"):
        assert command in script
    assert "identity-replica" in script
