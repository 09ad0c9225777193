"""hnswlib (PyPI) on a Euclidean set the large bench exported, printed as
rows of the bench's two tables: the build (on every core; memory is the
growth of this process's RSS while the index is built), then for each `ef`
recall@k against the bench's exact neighbours, single-thread QPS, p50, p99.

QPS is one `knn_query` call over all queries on one thread (hnswlib's C++
loop, no Python in between); p50 and p99 time one `knn_query` call per
query, so they include Python's call overhead (a few µs).

    target/python-venv/bin/pip install hnswlib numpy
    HVS_BENCH_PARTS=c128 HVS_BENCH_EXPORT=$PWD/target/bench-data cargo bench -p hvs-storage --bench large
    target/python-venv/bin/python storage/benches/hnswlib_ref.py \
        --base target/bench-data/c128_base.f32 --queries target/bench-data/c128_queries.f32 \
        --truth target/bench-data/c128_truth.i32 --dim 128 --label "E^128 clustered"

(the bench prints the exact command for each set it exports).
"""

import argparse
import os
import time

import hnswlib
import numpy as np

DEFAULT_EF = "10,16,24,32,48,64,96,128,192,256,384,512"


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentile(sorted_values: list, p: float) -> float:
    return sorted_values[round((len(sorted_values) - 1) * p)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="little-endian f32 base vectors")
    ap.add_argument("--queries", required=True, help="little-endian f32 queries")
    ap.add_argument("--truth", required=True, help="little-endian i32, k exact neighbours per query")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default=DEFAULT_EF, help="comma-separated ef sweep")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="build threads")
    ap.add_argument("--label", default="exported set", help="the data column")
    args = ap.parse_args()

    base = np.fromfile(args.base, dtype="<f4").reshape(-1, args.dim)
    queries = np.fromfile(args.queries, dtype="<f4").reshape(-1, args.dim)
    truth = np.fromfile(args.truth, dtype="<i4").reshape(len(queries), args.k)
    index_name = f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else '0.8'} f32 (M={args.m}, efc={args.ef_construction})"

    before = rss()
    t0 = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=args.dim)
    index.init_index(max_elements=len(base), M=args.m, ef_construction=args.ef_construction)
    index.add_items(base, np.arange(len(base)), num_threads=args.threads)
    build = time.perf_counter() - t0
    memory = (rss() - before) / len(base)
    print(
        "\n| data | index | build (writes + graph) | memory / vector | QPS all cores (store's ef) "
        "| unreachable | in overflow graphs | scanned exactly |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.label} | {index_name} | {build:.1f} s (parallel) | {memory:.0f} B | — | — | — | — |"
    )

    print(f"\n| data | index | ef | recall@{args.k} | QPS 1 thread | p50 | p99 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    index.set_num_threads(1)
    truth_sets = [set(row.tolist()) for row in truth]
    index.set_ef(int(args.ef.split(",")[0]))
    index.knn_query(queries[:100], k=args.k, num_threads=1)  # warm-up
    for ef in (int(e) for e in args.ef.split(",")):
        index.set_ef(ef)
        t1 = time.perf_counter()
        labels, _ = index.knn_query(queries, k=args.k, num_threads=1)
        qps = len(queries) / (time.perf_counter() - t1)
        found = sum(len(t.intersection(row.tolist())) for t, row in zip(truth_sets, labels))
        recall = found / (len(queries) * args.k)
        lat = []
        for q in queries:
            t = time.perf_counter()
            index.knn_query(q, k=args.k, num_threads=1)
            lat.append(time.perf_counter() - t)
        lat.sort()
        print(
            f"| {args.label} | {index_name} | {ef} | {recall:.4f} | {qps:.0f} | "
            f"{percentile(lat, 0.5) * 1e6:.1f} µs | {percentile(lat, 0.99) * 1e6:.1f} µs |"
        )


if __name__ == "__main__":
    main()
