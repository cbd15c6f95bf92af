"""The server's side of a cold start: how long Home's first script run takes on a fresh server, per launcher.

    python bench/cold_start.py                    # streamlit run / scripts/serve.py, 0 and 5 s after healthy, 2 repeats
    python bench/cold_start.py --repeats 3 --waits 0 2 5

For each launcher (bench/chromium.py's "streamlit": `streamlit run app.py`; "serve": scripts/serve.py, what
`bash scripts/dev.sh app` runs) and each wait: a fresh server on a loopback port, then, that many seconds after it answers its
health check, one Streamlit protocol client (bench/protocol.py, no browser) visits Home; the time is from its
first rerun message to that run's script_finished. A browser adds its own loading (Streamlit's JavaScript and
Plotly's) on top: bench/latency.py measures the whole cold start in Chromium. Medians over --repeats servers.
Prints one table and writes bench/results/cold_start.csv.
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from report import table  # noqa: E402  (also puts this checkout on sys.path)

from chromium import server_env, streamlit_server  # noqa: E402
from protocol import Client  # noqa: E402

LAUNCHERS = {"streamlit": "`streamlit run app.py`", "serve": "scripts/serve.py (`dev.sh app`)"}


async def home_run(url, wait, timeout):
    """Seconds from a new session's first rerun to its Home run's script_finished, `wait` s after healthy."""
    await asyncio.sleep(wait)
    client = Client(url)
    try:
        await client.connect(timeout)
        mark, sent = await client.rerun(page="", first_visit=True)
        run = await client.finished(mark, timeout)
        if run.problems:
            raise RuntimeError(f"Home's run failed: {run.problems[:2]}")
        return run.finished - sent
    finally:
        await client.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="fresh servers per launcher and wait (default 2)")
    ap.add_argument("--waits", type=float, nargs="+", default=[0.0, 5.0], help="seconds after healthy (default 0 5)")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the server (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    env = server_env(OMP_NUM_THREADS=args.threads)
    rows = []
    for how, label in LAUNCHERS.items():
        for wait in args.waits:
            ups, runs = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                with streamlit_server(how=how, env=env, timeout=args.timeout) as (url, _):
                    ups.append(time.perf_counter() - t0)
                    runs.append(asyncio.run(home_run(url, wait, args.timeout)))
            rows.append({"launcher": label, "wait after healthy (s)": wait, "server up (s)": statistics.median(ups),
                         "Home's first run (s)": statistics.median(runs), "runs": ", ".join(f"{r:.2f}" for r in runs)})
            print(rows[-1], flush=True)
    table(f"Home's first script run on a fresh server, protocol client (OMP_NUM_THREADS={args.threads}, "
          f"median of {args.repeats})", rows, "cold_start")


if __name__ == "__main__":
    main()
