"""hnswlib (PyPI) on the 128-d data the large bench exported, for the same
table: build, recall@10 against brute force, QPS, p50/p99 (Python's call
overhead included).

    pip install hnswlib numpy
    HVS_BENCH_PARTS=e128 HVS_BENCH_EXPORT=target/e128 cargo bench -p hvs-storage --bench large
    python3 storage/benches/hnswlib_ref.py target/e128
"""

import os
import sys
import time

import hnswlib
import numpy as np


def main(folder: str) -> None:
    base = np.fromfile(os.path.join(folder, "e128_base.f32"), dtype="<f4").reshape(-1, 128)
    queries = np.fromfile(os.path.join(folder, "e128_queries.f32"), dtype="<f4").reshape(-1, 128)
    index = hnswlib.Index(space="l2", dim=128)
    t0 = time.perf_counter()
    index.init_index(max_elements=len(base), M=16, ef_construction=128)
    index.add_items(base, np.arange(len(base)), num_threads=os.cpu_count())
    build = time.perf_counter() - t0
    index.set_ef(64)
    index.set_num_threads(1)
    n_recall = min(200, len(queries))
    found = 0
    for q in queries[:n_recall]:
        d = ((base - q) ** 2).sum(axis=1)
        truth = set(np.argpartition(d, 10)[:10].tolist())
        labels, _ = index.knn_query(q, k=10)
        found += len(truth.intersection(labels[0].tolist()))
    recall = found / (n_recall * 10)
    lat = []
    t1 = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        index.knn_query(q, k=10)
        lat.append(time.perf_counter() - t)
    qps = len(queries) / (time.perf_counter() - t1)
    lat.sort()
    p50 = lat[round((len(lat) - 1) * 0.5)] * 1e6
    p99 = lat[round((len(lat) - 1) * 0.99)] * 1e6
    print(
        f"| hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else '0.8'} "
        f"(f32, M=16, efc=128, ef=64), E^128 | {len(base)} | {build:.1f} s (parallel) | — | "
        f"{recall:.4f} | {qps:.0f} | — | {p50:.1f} µs | {p99:.1f} µs | — | — | — |"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/e128")
