#!/usr/bin/env python3
"""Load run: a real HTTP client (wrk) against `testhost serve`, at 1, 8 and 64
connections, for the resend path (cooldown off, so every request sends an SMS
through the HTTP gateway client) and for the floor component served the same
way. Prints the table that BENCHMARKS.md quotes.

    python3 benches/load.py [--duration SECONDS]

Installs wrk (Debian package) when it is missing, builds the test host and
the components, and starts and stops every server it uses. The mock SMS
gateway is the floor component on its own host: it answers 200 to any POST.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTHOST = os.path.join(ROOT, "target", "release", "testhost")
WASM_DIR = os.path.join(ROOT, "target", "wasm32-wasip2", "release")
GATEWAY = "127.0.0.1:3901"
PRODUCT = "127.0.0.1:3902"
FLOOR = "127.0.0.1:3903"
CONNECTIONS = (1, 8, 64)
MERGE_REQUESTS = 2000
API_KEY = "dev-api-key"

RESEND_SCRIPT = """
local ids = {%s}
local headers = {["Authorization"] = "Bearer %s", ["Api-Key"] = "%s"}
local next_start = 0
function setup(thread)
  thread:set("i", next_start)
  next_start = next_start + math.floor(#ids / 2)
end
function request()
  i = i + 1
  return wrk.format("POST", "/api/merge_requests/" .. ids[(i %% #ids) + 1] .. "/actions/resend_otp", headers, "")
end
"""


def run(*command, **kwargs):
    return subprocess.run(command, check=True, cwd=ROOT, **kwargs)


def ensure_wrk():
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    run(*sudo, "apt-get", "update", "-qq")
    run(*sudo, "apt-get", "install", "-y", "-qq", "wrk")


def build():
    # The same optimised host as `cargo bench`; the components as `spin build`.
    run("cargo", "build", "--profile", "bench", "-p", "testhost")
    run("cargo", "build", "--target", "wasm32-wasip2", "--release",
        "-p", "resend-otp", "-p", "bench-floor")


def serve(listen, manifest, variables=None):
    env = dict(os.environ)
    for name, value in (variables or {}).items():
        env["SPIN_VARIABLE_" + name.upper()] = value
    process = subprocess.Popen(
        [TESTHOST, "serve", "--listen", listen, "--manifest", manifest],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    host, port = listen.split(":")
    for _ in range(600):
        try:
            http.client.HTTPConnection(host, int(port), timeout=1).connect()
            return process
        except OSError:
            if process.poll() is not None:
                sys.exit(process.stderr.read().decode())
            time.sleep(0.1)
    sys.exit(f"{listen} did not start")


def token():
    return subprocess.run([TESTHOST, "token", "--ttl", "7200"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def create_merge_requests(bearer, count):
    host, port = PRODUCT.split(":")
    connection = http.client.HTTPConnection(host, int(port))
    ids = []
    for serial in range(count):
        body = json.dumps({"merge_request": {
            "master_person_id": str(uuid.uuid4()),
            "merge_person_id": str(uuid.uuid4()),
            "authentication_method_current": {"type": "OTP", "phone_number": f"+380{600000000 + serial}"},
        }})
        connection.request("POST", "/api/merge_requests", body, {
            "Authorization": f"Bearer {bearer}", "Api-Key": API_KEY,
            "Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 201:
            sys.exit(f"creating a merge request: {response.status} {answer}")
        ids.append(answer["data"]["id"])
    return ids


def wrk(url, connections, duration, script=None):
    command = ["wrk", "--latency", "-t", str(min(connections, 2)), "-c", str(connections),
               "-d", f"{duration}s"]
    if script:
        command += ["-s", script]
    output = subprocess.run(command + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", output).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", output).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    ensure_wrk()
    build()
    servers = []
    try:
        servers.append(serve(GATEWAY, "tests/components/floor/spin.toml"))
        servers.append(serve(PRODUCT, "spin.toml", {
            "sms_provider": "http",
            "sms_gateway_url": f"http://{GATEWAY}/messages",
            "sms_gateway_origin": f"http://{GATEWAY}",
            "otp_hash_key": "load-run-otp-hash-key",
            "otp_resend_cooldown_seconds": "0",
            "otp_max_sends": "1000",
            "otp_max_sends_per_phone_per_day": "100000",
        }))
        servers.append(serve(FLOOR, "tests/components/floor/spin.toml"))
        bearer = token()
        ids = create_merge_requests(bearer, MERGE_REQUESTS)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(RESEND_SCRIPT % (",".join(f'"{i}"' for i in ids), bearer, API_KEY))
        rows = []
        for connections in CONNECTIONS:
            resend = wrk(f"http://{PRODUCT}", connections, args.duration, script.name)
            floor = wrk(f"http://{FLOOR}/", connections, args.duration)
            rows.append((connections, resend, floor))
        os.unlink(script.name)
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
            server.wait()
    print(f"\n## Load ({args.duration} s per run, wrk, {MERGE_REQUESTS} merge requests in turn)\n")
    print("| connections | resend req/s | resend p50 | resend p99 | non-2xx | floor req/s | floor p50 | floor p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for connections, (rps, p50, p99, errors), (frps, fp50, fp99, _) in rows:
        print(f"| {connections} | {rps:.0f} | {p50} | {p99} | {errors} | {frps:.0f} | {fp50} | {fp99} |")


if __name__ == "__main__":
    main()
