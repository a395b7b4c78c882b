"""Apply state figures: the lock's acquire/release round trip on files and against the S3 API on
loopback (moto's server), and how reading a journal grows with its entries.

Run with `make bench`; the figures go into the README. `shipyard drift` on the template repo is
timed by bench_up.py, which has the local platform up.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.engine.state.identity import current_run
from shipyard.engine.state.journal import Journal
from shipyard.engine.state.lease import Lease
from shipyard.engine.state.s3 import S3Store
from shipyard.engine.state.store import FileStore, ObjectStore


def median_ms(action: Callable[[], None], runs: int = 50) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def round_trip(store: ObjectStore) -> Callable[[], None]:
    run = current_run({})
    journal = Journal(store, run)

    def once() -> None:
        with Lease(store, journal, run, "bench"):
            pass

    return once


def journal_read(store: ObjectStore, entries: int) -> float:
    journal = Journal(store, current_run({}))
    for i in range(entries):
        journal.record(f"plan-{entries}", "done", f"plane/team/Kind/name-{i}")
    return median_ms(lambda: journal.done(f"plan-{entries}"), runs=5)  # what resuming reads


def main() -> None:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="shipyard-bench-state")
    s3 = S3Store("shipyard-bench-state", "shipyard/bench", client=client)
    files = FileStore(Path(tempfile.mkdtemp(prefix="shipyard-bench-state-")))
    rows = [
        ("lock acquire + release, files (`.shipyard/local`)", median_ms(round_trip(files))),
        ("lock acquire + release, S3 API on loopback (moto)", median_ms(round_trip(s3))),
    ]
    for entries in (10, 100, 1000):
        rows.append((f"journal: read a plan's {entries} entries, files", journal_read(files, entries)))
        rows.append((f"journal: read a plan's {entries} entries, S3 (moto)", journal_read(s3, entries)))
    server.stop()
    print("| What | Median |")
    print("|---|---|")
    for what, ms in rows:
        print(f"| {what} | {ms:.1f} ms |")


if __name__ == "__main__":
    sys.exit(main())
