"""Throughput of ArchiveWriter against ``tar -cf - DIR | zstd -3 -T0 > /dev/null`` on the same tree.

Usage::

    .venv/bin/python bench/archive_throughput.py                      # builds a ~300 MB / 20k file tree
    .venv/bin/python bench/archive_throughput.py --tree /var/www/vhosts/example.com
    .venv/bin/python bench/archive_throughput.py --profile            # cProfile one ArchiveWriter run

Both sides read a warm page cache (one untimed tar pass first), compress with zstd level 3 using
all cores, and discard the output. ArchiveWriter additionally hashes every file (SHA-256) for the
checksum list, as it does in a real backup. The ratio printed is tar time / ArchiveWriter time:
1.0 means parity, 0.5 means ArchiveWriter takes twice as long. CPU seconds (user + system, all
threads and child processes) are printed too: on a shared, busy machine they are steadier than wall
time. Runs are interleaved so background load hits both sides alike. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostbackup.backup.archive import DEFAULT_THREADS, ArchiveWriter

MB = 1000 * 1000


class NullSink:
    """Counts and discards the compressed stream, like /dev/null."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.size += len(data)
        return len(data)


def make_tree(root: Path, total_bytes: int, files: int, seed: int = 1) -> None:
    """A web-hosting-like tree: many small text files, some media-like random files, a few big ones."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz<>/=;{}", k=rng.randint(2, 10))) for _ in range(3000)]
    corpus = " ".join(rng.choices(vocabulary, k=900_000)).encode()
    sizes = [min(int(rng.lognormvariate(8.0, 1.8)), 32 * MB) for _ in range(files)]
    scale = total_bytes / sum(sizes)
    for index, raw_size in enumerate(sizes):
        size = int(raw_size * scale)
        directory = root / f"site{index // 1000:02d}" / f"dir{(index // 25) % 40:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        media = rng.random() < 0.35
        path = directory / f"file{index:05d}.{'jpg' if media else 'php'}"
        with open(path, "wb") as f:
            if media:
                f.write(os.urandom(size))
            else:
                while size > 0:
                    start = rng.randrange(0, len(corpus) - 1)
                    piece = corpus[start : start + size]
                    f.write(piece)
                    size -= len(piece)


def tree_size(root: Path) -> tuple[int, int]:
    total = count = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            count += 1
    return total, count


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_tar(root: Path, level: int) -> tuple[float, float]:
    """Wall and CPU seconds (tar, zstd and its threads) of the reference pipeline."""
    command = f"tar -cf - -C {root.parent} {root.name} | zstd -{level} -T0 -q > /dev/null"
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def run_writer(root: Path, level: int, threads: int) -> tuple[float, float, int]:
    """Wall and CPU seconds (this process, zstd threads included) and the compressed size."""
    sink = NullSink()
    cpu = cpu_seconds(resource.RUSAGE_SELF)
    start = time.perf_counter()
    writer = ArchiveWriter(sink, level=level, threads=threads)
    writer.add_tree(root, "files")
    writer.close()
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu, sink.size


def compressed_size_tar(root: Path, level: int) -> int:
    command = f"tar -cf - -C {root.parent} {root.name} | zstd -{level} -T0 -q | wc -c"
    return int(subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True).stdout)


def profile_writer(root: Path, level: int, threads: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run_writer(root, level, threads)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help="existing directory to archive (default: build one)")
    parser.add_argument("--size-mb", type=int, default=300, help="size of the generated tree")
    parser.add_argument("--files", type=int, default=20_000, help="number of files in the generated tree")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="zstd threads for ArchiveWriter")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one ArchiveWriter run")
    args = parser.parse_args()

    scratch = None
    root = args.tree
    if root is None:
        scratch = Path(tempfile.mkdtemp(prefix="hb-bench-"))
        root = scratch / "tree"
        print(f"building {args.size_mb} MB / {args.files} files in {root} …", flush=True)
        make_tree(root, args.size_mb * MB, args.files)
    try:
        total, count = tree_size(root)
        print(f"tree: {total / MB:.0f} MB in {count} files, {os.cpu_count()} CPUs")
        tar_size = compressed_size_tar(root, args.level)  # also warms the page cache
        tar_runs: list[tuple[float, float]] = []
        our_runs: list[tuple[float, float]] = []
        our_size = 0
        for _ in range(args.repeat):  # interleaved, so background load hits both alike
            tar_runs.append(run_tar(root, args.level))
            wall, cpu, our_size = run_writer(root, args.level, args.threads)
            our_runs.append((wall, cpu))
        report("tar | zstd", tar_runs, total, tar_size)
        report("ArchiveWriter", our_runs, total, our_size)
        tar_best, our_best = min(w for w, _ in tar_runs), min(w for w, _ in our_runs)
        tar_cpu, our_cpu = min(c for _, c in tar_runs), min(c for _, c in our_runs)
        print(f"ratio, wall (tar / ArchiveWriter, best of {args.repeat}): {tar_best / our_best:.2f}")
        print(f"ratio, CPU  (tar / ArchiveWriter, best of {args.repeat}): {tar_cpu / our_cpu:.2f}")
        if args.profile:
            profile_writer(root, args.level, args.threads)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch)


def report(label: str, runs: list[tuple[float, float]], total: int, compressed: int) -> None:
    walls = [wall for wall, _ in runs]
    best, median, cpu = min(walls), statistics.median(walls), min(c for _, c in runs)
    print(
        f"{label:>14}: best {best:.2f} s ({total / MB / best:.0f} MB/s), median {median:.2f} s, "
        f"CPU {cpu:.2f} s, output {compressed / MB:.0f} MB"
    )


if __name__ == "__main__":
    main()
