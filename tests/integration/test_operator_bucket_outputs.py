"""Outputs in a bucket through the operator on the real control plane: four workers, one listing.

The batch names ``spec.outputs.s3`` with a credentials Secret; the operator
injects the Secret's keys as ``secretKeyRef`` variables, the test kubelet resolves
them, and four parallel workers (tests/parallel_worker.py) write disjoint items
to a bucket on moto's S3 server (tests/s3server.py). `resumable outputs NAME`
then reads the batch from the API server and the objects from the bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from resumable.kubeapi import KubeApi
from tests.integration.harness import Batches, OperatorProcess
from tests.integration.test_parallel import parallel_manifest
from tests.s3server import MotoServer

RESUMABLE = Path(sys.executable).parent / "resumable"


def test_four_workers_write_disjoint_items_to_the_bucket_and_the_cli_lists_each_once(
    api: KubeApi,
    namespace: str,
    batches: Batches,
    operator: OperatorProcess,
    kubeconfig: Path,
    moto: MotoServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-writer"},
            "stringData": moto.env(),
        },
    )
    outputs: dict[str, Any] = {
        "s3": {
            "bucket": bucket,
            "endpoint": moto.endpoint,
            "prefix": "it",
            "credentialsSecret": {"name": "s3-writer"},
        }
    }
    body = parallel_manifest("bucketed", tmp_path, items=60, parallelism=4, outputs=outputs)
    batches.create(body)
    ended = batches.wait_ended("bucketed", timeout=120)
    assert ended["status"]["phase"] == "Succeeded", ended["status"]

    pod_env = batches.pods("bucketed")[0]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e.get("valueFrom") for e in pod_env if e["name"].startswith("AWS_")}
    assert refs["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-writer", "key": "AWS_ACCESS_KEY_ID"}
    }

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cli = subprocess.run(
        [str(RESUMABLE), "outputs", "bucketed", "--kubeconfig", str(kubeconfig), "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, **moto.env()},
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(60))  # each once, in item order
    assert len({line["output"]["slot"] for line in lines}) > 1  # written by several workers
