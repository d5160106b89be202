"""A job in another language than the project's: users' Jobs are not Node.

It counts work items with Debian's python3-prometheus-client, serves them on /metrics, and prints
its ground truth (what it really counted) as one JSON line on stdout when it ends, also when it is
stopped by SIGTERM. TRUTH_FILE, if set, gets the same JSON after every increment, so even a SIGKILL
(an OOM kill) leaves the truth behind; /dev/termination-log is a good choice in a pod, since the
kubelet copies it into the container's status.

Environment: PORT (default 9100), ITEMS (default 100), DURATION_MS (spread over this long, default
1000), SETTLE_MS (stay up this long after the last increment so it is scraped, default 1500),
EXIT_CODE (default 0), TRUTH_FILE. Every 10th item counts as failed, so the truth is known in advance:
ok = ITEMS - ITEMS // 10, failed = ITEMS // 10.
"""
import json
import os
import signal
import sys
import time

from prometheus_client import Counter, start_http_server


def setting(name, default):
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        sys.stderr.write(json.dumps({"error": "bad setting", "setting": name, "value": raw}) + "\n")
        sys.exit(2)


port = setting("PORT", 9100)
items = setting("ITEMS", 100)
duration_ms = setting("DURATION_MS", 1000)
settle_ms = setting("SETTLE_MS", 1500)
exit_code = setting("EXIT_CODE", 0)
truth_file = os.environ.get("TRUTH_FILE", "")

processed = Counter("pyjob_items_processed", "Work items processed.", ["outcome"])
truth = {"ok": 0, "failed": 0}


def write_truth():
    if truth_file:
        with open(truth_file, "w") as f:
            f.write(json.dumps(truth))


def finish(code):
    print(json.dumps({"truth": truth, "exitCode": code}), flush=True)
    sys.exit(code)


signal.signal(signal.SIGTERM, lambda signo, frame: finish(128 + signo))

write_truth()
start_http_server(port)
gap = duration_ms / 1000 / items if items > 0 else 0
for i in range(items):
    outcome = "failed" if i % 10 == 9 else "ok"
    processed.labels(outcome=outcome).inc()
    truth[outcome] += 1
    write_truth()
    if gap > 0:
        time.sleep(gap)
time.sleep(settle_ms / 1000)
finish(exit_code)
