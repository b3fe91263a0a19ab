"""`resumable run` checks the pod template against the Pod schema, as a cluster does (issue 21).

The operator creates worker pods with ``fieldValidation=Strict``: a misspelt field
(``comand:``, ``evn:``, ``restartPolcy:``) or a wrong type is refused there. The
local runner used to drop such fields and run without them. Run through the real
``resumable`` entry point: one line naming the file and each field, nothing run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resumable_runner import podschema, podschema_gen
from resumable_runner.manifest import load_manifest

RESUMABLE = Path(sys.executable).parent / "resumable"

GOOD = """\
apiVersion: resumable.dev/v1alpha1
kind: ResumableBatch
metadata:
  name: docs
spec:
  template:
    metadata:
      creationTimestamp: null
      labels: {team: search}
    spec:
      restartPolicy: Never
      nodeSelector: {disk: ssd}
      volumes:
        - name: data
          emptyDir: {sizeLimit: 1Gi}
      containers:
        - name: worker
          command: ["true"]
          env:
            - {name: A, value: "1"}
            - name: B
              valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1}}
          resources:
            limits: {cpu: 1, memory: 512Mi}
          ports: [{containerPort: 8080}]
          livenessProbe: {httpGet: {port: http, path: /}}
          readinessProbe: {tcpSocket: {port: 8080}}
          volumeMounts: [{name: data, mountPath: /data}]
"""

CONTAINER = "spec.template.spec.containers[0]"

# (id, old text, new text, what the one line must contain)
REFUSED = [
    (
        "comand",
        'command: ["true"]',
        'command: ["true"]\n          comand: ["x"]',
        f"{CONTAINER}.comand: unknown field comand (did you mean command?)",
    ),
    (
        "evn",
        "env:",
        "evn:",
        f"{CONTAINER}.evn: unknown field evn (did you mean env?)",
    ),
    (
        "restartPolcy",
        "restartPolicy: Never",
        "restartPolcy: Never",
        "spec.template.spec.restartPolcy: unknown field restartPolcy (did you mean restartPolicy?)",
    ),
    (
        "deep-unknown",
        "path: /}",
        "path: /, hots: x}",
        f"{CONTAINER}.livenessProbe.httpGet.hots: unknown field hots",
    ),
    (
        "template-metadata",
        "labels: {team: search}",
        "lables: {team: search}",
        "spec.template.metadata.lables: unknown field lables (did you mean labels?)",
    ),
    (
        "port-string",
        "containerPort: 8080",
        'containerPort: "8080"',
        f"{CONTAINER}.ports[0].containerPort: must be an integer, not a string ('8080')",
    ),
    ("stdin-string", "- name: worker", '- name: worker\n          stdin: "yes"', ".stdin: must be"),
    ("port-bool", "port: 8080}", "port: true}", "tcpSocket.port: must be an integer or a string"),
    ("cpu-list", "cpu: 1,", "cpu: [1],", "resources.limits.cpu: must be a quantity"),
    ("nodeSelector-list", "{disk: ssd}", "[ssd]", "spec.template.spec.nodeSelector: must be a map"),
]


@pytest.mark.parametrize(("old", "new", "expected"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])  # fmt: skip
def test_a_template_field_the_pod_schema_does_not_take_is_refused_naming_it(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    (tmp_path / "bad.yaml").write_text(GOOD.replace(old, new, 1))
    result = subprocess.run(
        [str(RESUMABLE), "run", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: bad.yaml: "), lines[0]
    assert expected in lines[0], lines[0]
    assert f"(the Pod schema of Kubernetes {podschema.kubernetes_version()})" in lines[0]
    assert result.returncode == 1
    assert result.stdout == ""  # nothing ran
    assert not (tmp_path / ".resumable").exists()


def test_every_problem_is_named_in_the_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("env:", "evn:").replace("restartPolicy:", "restartPolcy:"))
    with pytest.raises(ValueError, match=r"restartPolcy: unknown field.*; .*evn: unknown field"):
        load_manifest(path)


def test_what_a_cluster_takes_loads_numbers_for_quantities_names_for_ports_and_null(
    tmp_path: Path,
) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    batch = load_manifest(path)
    assert batch.spec.template.spec.containers[0].command == ["true"]


def test_the_shipped_schema_is_what_the_generator_makes_from_the_installed_client() -> None:
    kubernetes = pytest.importorskip("kubernetes")
    shipped = json.loads(podschema.SCHEMA_FILE.read_text())
    # A client's major version is its Kubernetes release; its patch releases share the
    # API, so only another major skips (pip may resolve a different patch than ours).
    major = kubernetes.__version__.split(".")[0]
    if f"kubernetes client {major}." not in shipped["source"]:
        pytest.skip(f"made from {shipped['source']}; this venv has {kubernetes.__version__}")
    generated = podschema_gen.generate()
    generated["source"] = shipped["source"]
    assert generated == shipped, "stale: run `make pod-schema`"
    assert podschema.SCHEMA_FILE.read_text() == podschema_gen.render(generated)
    assert set(shipped["types"]["Container"]) >= {"command", "args", "env", "workingDir"}
