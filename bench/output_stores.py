"""Items/s with 1 KB and 100 KB outputs on each output store, beside the raw write rate. By hand.

    python bench/output_stores.py            # about a minute; last line is JSON

For each store (a directory on the disk under test; an S3 bucket on moto's server
on loopback, started here as the tests start it) and each output size, in one run:

  sdk: a loop of items with no work under the SDK (the default checkpoint policy),
       each setting ``item.output`` to a string of that many bytes;
  raw: the same bytes written without the SDK: for the directory, a file per item
       by temp file and rename plus one syncfs at the end (what the SDK's store does);
       for the bucket, one PUT per item through the same client (obstore).

``ratio`` is sdk/raw. moto is a Python server, so the bucket's absolute rates say
more about it than about a real S3; the ratio is what the SDK adds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
try:
    import resumable
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "sdk"))
    import resumable

from resumable import Settings, atomic_write  # noqa: E402
from resumable.v1alpha1 import OutputsSpec  # noqa: E402
from tests.s3server import start_moto  # noqa: E402

SIZES = {"1KB": 1024, "100KB": 100 * 1024}


def sdk_rate(directory: Path, count: int, size: int, outputs: OutputsSpec | None) -> float:
    """Items/s of a no-work loop under the SDK, each with a ``size``-byte output."""
    settings = Settings(outputs=outputs, handle_signals=False)
    run = resumable.start("bench", directory=directory, settings=settings)
    payload = "x" * size
    started = time.perf_counter()
    for item in run.items(range(count)):
        with item:
            item.output = payload
    run.close()
    return count / (time.perf_counter() - started)


def raw_directory_rate(directory: Path, count: int, size: int) -> float:
    """Items/s of writing the same JSON bytes as files (temp file, rename; one sync)."""
    directory.mkdir(parents=True)
    data = json.dumps({"index": 0, "key": "0", "output": "x" * size}).encode()
    started = time.perf_counter()
    for index in range(count):
        atomic_write(directory / f"{index:08d}.json", data, durable=False)
    os.sync()
    return count / (time.perf_counter() - started)


def raw_s3_rate(spec: Any, env: dict[str, str], count: int, size: int, prefix: str) -> float:
    """Items/s of PUTting the same JSON bytes, one object per item, through obstore."""
    import obstore

    from resumable._s3 import open_bucket

    store = open_bucket(spec, env)
    data = json.dumps({"index": 0, "key": "0", "output": "x" * size}).encode()
    started = time.perf_counter()
    for index in range(count):
        obstore.put(store, f"{prefix}/{index:08d}.json", data)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400, help="items per 1 KB measurement")
    parser.add_argument("--dir", default=None, help="where the directory store lives (a tmp)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    server = start_moto()
    try:
        os.environ.update(server.env())
        bucket = server.create_bucket("bench")
        s3 = OutputsSpec.model_validate({"s3": {"bucket": bucket, "endpoint": server.endpoint}})
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="output-stores-") as tmp:
            work = Path(tmp)
            for label, size in SIZES.items():
                count = args.items if size <= 1024 else max(50, args.items // 4)
                for store in ("directory", "s3"):
                    name = f"{store}-{label}"
                    if store == "directory":
                        sdk = sdk_rate(work / name / "sdk", count, size, None)
                        raw = raw_directory_rate(work / name / "raw", count, size)
                    else:
                        sdk = sdk_rate(work / name / "sdk", count, size, s3)
                        raw = raw_s3_rate(s3.s3, server.env(), count, size, f"raw/{name}")
                    results[name] = {
                        "items": count,
                        "sdk_items_per_s": round(sdk, 1),
                        "raw_items_per_s": round(raw, 1),
                        "ratio": round(sdk / raw, 3),
                    }
    finally:
        server.stop()
    print(f"{'store':<18}{'items':>7}{'sdk items/s':>14}{'raw items/s':>14}{'sdk/raw':>9}")
    for name, row in results.items():
        print(
            f"{name:<18}{row['items']:>7.0f}{row['sdk_items_per_s']:>14.1f}"
            f"{row['raw_items_per_s']:>14.1f}{row['ratio']:>9.3f}"
        )
    print(json.dumps({"bench": "output_stores", "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
