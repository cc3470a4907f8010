"""
How much slower the master's per-event work runs after the process idled: decode one flow-path result.

A master at a real cluster's pace sleeps between results; this times the same decode back to back and
after idle gaps (the payload handed over through a queue from another thread, as zenoh's callback does).
On the 2-vCPU VM of BENCHMARKS.md the time grows with the gap: the in-run master overhead there is
mostly this, which is why ``bench`` also measures master capacity (``1+N:echo``). Usage:
``taskset -c 0 python scripts/idle_gap.py [--out FILE]``.
"""

from __future__ import annotations

import argparse
import platform
import queue
import threading
import time

import numpy as np

from dvs_cluster.transport import messages as m


def decode_times(payload: bytes, gap_s: float, count: int = 300) -> list[float]:
    """Thread CPU seconds of each decode, each payload arriving ``gap_s`` after the one before."""
    inbox: queue.Queue[bytes | None] = queue.Queue()

    def feed() -> None:
        for _ in range(count):
            if gap_s:
                time.sleep(gap_s)
            inbox.put(payload)
        inbox.put(None)

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = []
    while (data := inbox.get()) is not None:
        t0 = time.thread_time()
        m.decode_result(data, check_logits=False)
        out.append(time.thread_time() - t0)
    feeder.join()
    return out


def main() -> None:
    """Print (and optionally save) the median decode time per idle gap."""
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    labels = np.random.default_rng(0).integers(0, 19, (256, 512), dtype=np.uint8)
    res = m.Result("c", "slave0", 1, 0, m.PATH_FLOW, 95.0, 0, labels, run_id="r")
    payload = bytes(m.encode_result(res))
    m.decode_result(payload)  # warm up
    lines = [
        f"decode of one flow-path result ({len(payload)} bytes), {platform.platform()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "idle gap ms | median us | p90 us",
    ]
    for gap_ms in (0, 0.5, 2, 5, 20, 50):
        t = np.array(decode_times(payload, gap_ms / 1000.0, 300 if gap_ms < 20 else 100)) * 1e6
        lines.append(f"{gap_ms:g} | {np.median(t):.1f} | {np.percentile(t, 90):.1f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
