"""How heavy is the class server (`make hub`) on this machine? Run as root:

    .venv/bin/python benchmarks/hub_load.py [--students 20]

It starts `make hub` on a fresh prefix for an instructor and N students made for the run, and reports:

- the seconds from `make hub` to a usable login page (the first start: logins, environment, proxy from
  npm, the instructor's course and its `make release`), and of a second start after `make hub-stop`;
- the memory of one idle student server (PSS, MiB: shared pages counted once across processes) and
  the CPU seconds its start cost;
- with one server running, the other N-1 started at once through the hub's REST API: seconds until all
  are ready, and the memory of the N idle servers together;
- the memory of a student's kernel once it has imported torch and the course (what working adds);
- a projection for a class of 100 on one 16-core server.

`make hub-clean` removes the run's logins and folders at the end. The results (with the machine's load
average and core count while measuring) go to benchmarks/results/hub-load-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.sandbox import processes_with_env  # noqa: E402

MiB = 1024 * 1024


def make(target: str, prefix: Path, *extra: str) -> tuple[float, str]:
    """Run `make <target>` for the class server at ``prefix``; return (seconds, output).

    Raises:
        RuntimeError: make fails.
    """
    venv = sys.prefix
    began = time.monotonic()
    done = subprocess.run(["make", "--no-print-directory", target, f"VENV={venv}", "-o", f"{venv}/.installed",
                           "-o", f"{venv}/.hub-installed", f"HUB_PREFIX={prefix}", *extra],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"make {target} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - began, done.stdout


def api(url: str, token: str, path: str, method: str = "GET"):
    """A call to the hub's REST API with the measuring service's token; the decoded JSON reply."""
    request = urllib.request.Request(f"{url}/hub/api{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=600) as reply:
        text = reply.read().decode()
    return json.loads(text) if text else None


def start_server(url: str, token: str, user: str, timeout: float = 900) -> float:
    """Ask the hub to start ``user``'s server; return the seconds until the hub reports it ready.

    Raises:
        TimeoutError: not ready within ``timeout`` seconds.
    """
    began = time.monotonic()
    api(url, token, f"/users/{user}/server", method="POST")
    while time.monotonic() - began < timeout:
        server = api(url, token, f"/users/{user}").get("servers", {}).get("", {})
        if server.get("ready"):
            return time.monotonic() - began
        time.sleep(0.5)
    raise TimeoutError(f"{user}'s server was not ready within {timeout:.0f} s")


def processes_of(users: list[str]) -> list[int]:
    uids = {pwd.getpwnam(u).pw_uid for u in users}
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) in uids]


def _uid(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def pss_mib(pids: list[int]) -> float:
    """The proportional set size of ``pids`` together, in MiB (each shared page split among its users)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / MiB


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes ``pids`` have used, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / ticks


def kernel_mib(prefix: Path, user: str) -> float:
    """The memory (PSS, MiB) of a Python of the class environment, run as ``user``, that has imported
    torch and the course's U-Net and diffusion code, as a student's kernel has after the first cell."""
    probe = ("import torch, utils.basic_unet, utils.ddpm_utils, ipykernel\n"
             "for line in open('/proc/self/smaps_rollup'):\n"
             "    if line.startswith('Pss:'): print(int(line.split()[1]) / 1024)\n")
    done = subprocess.run(["runuser", "-u", user, "--", str(prefix / "env" / "bin" / "python"), "-c", probe],
                          capture_output=True, text=True, cwd="/", check=True)
    return float(done.stdout.split()[-1])


def projection(per_server: float, per_kernel: float, start_cpu: float, hub_mib: float, cores: int = 16,
               students: int = 100) -> dict:
    """What a class of ``students`` needs on one server with ``cores`` cores, from the measured figures."""
    return {
        "students": students, "cores": cores,
        "memory_idle_GiB": round((hub_mib + students * per_server) / 1024, 1),
        "memory_each_with_a_kernel_GiB": round((hub_mib + students * (per_server + per_kernel)) / 1024, 1),
        "all_start_at_once_s (CPU-bound estimate)": round(students * start_cpu / cores, 1),
    }


def measure(students: int, prefix: Path, assignments: str, result: dict) -> None:
    """Start the class server for ``students`` students and put the figures listed in the docstring into
    ``result`` as they are taken (an interrupted run keeps the ones it has)."""
    roster = prefix.with_name(prefix.name + "-roster.csv")
    names = [f"dc-load-{i:03d}" for i in range(1, students + 1)]
    roster.write_text("username,role\ndc-load-teach,instructor\n" + "".join(f"{n},student\n" for n in names))
    result.update({"cores": os.cpu_count(), "load_before": os.getloadavg(), "students": students,
                   "assignments released": assignments or "all"})
    chosen = [f"HUB_ASSIGNMENTS={assignments}"] if assignments else []
    result["first_make_hub_s"], _ = make("hub", prefix, f"HUB_ROSTER={roster}", f"HUB_PORT={free_port()}", *chosen)
    make("hub-stop", prefix)
    port = free_port()
    result["second_make_hub_s"], _ = make("hub", prefix, f"HUB_ROSTER={roster}", f"HUB_PORT={port}")
    url, token = f"http://127.0.0.1:{port}", (prefix / "state" / "admin-token").read_text().strip()
    result["one_server_start_s"] = start_server(url, token, names[0])
    time.sleep(10)  # idle: the server has settled
    result["idle_server_MiB"] = pss_mib(processes_of(names[:1]))
    result["server_start_cpu_s"] = cpu_seconds(processes_of(names[:1]))
    result["kernel_MiB"] = kernel_mib(prefix, names[0])
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(lambda name: start_server(url, token, name), names[1:]))
    result[f"{students - 1}_more_servers_start_at_once_s"] = time.monotonic() - began
    time.sleep(10)
    result[f"{students}_idle_servers_MiB"] = pss_mib(processes_of(names))
    result["hub_and_proxy_MiB"] = pss_mib(_hub_pids(prefix))
    result["load_after"] = os.getloadavg()
    result["projection"] = projection(result[f"{students}_idle_servers_MiB"] / students, result["kernel_MiB"],
                                      result["server_start_cpu_s"], result["hub_and_proxy_MiB"])


def _hub_pids(prefix: Path) -> list[int]:
    """JupyterHub and its proxy: the processes of the class server at ``prefix`` that run as root."""
    return [pid for pid in processes_with_env("COURSE_HUB_PREFIX", str(prefix)) if _uid(Path(f"/proc/{pid}")) == 0]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--prefix", type=Path, default=Path(f"/srv/dc-load-{secrets.token_hex(2)}"))
    parser.add_argument("--assignments", default="", help="ids the course releases when made (default: all)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: the class server creates logins: run as root", file=sys.stderr)
        return 1
    result: dict = {}
    try:
        measure(args.students, args.prefix, args.assignments, result)
    finally:
        result["load_at_end"] = os.getloadavg()
        out = ROOT / "benchmarks" / "results" / f"hub-load-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        make("hub-clean", args.prefix)
        args.prefix.with_name(args.prefix.name + "-roster.csv").unlink(missing_ok=True)
    for key, value in result.items():
        print(f"{key:<40} {round(value, 1) if isinstance(value, float) else json.dumps(value)}")
    print("written to", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
