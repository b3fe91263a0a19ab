"""The ``resumable-operator`` console script: settings from the environment, then kopf."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from resumable_operator.config import PREFIX, OperatorConfig, SettingsError


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(config: OperatorConfig) -> None:
    """Log at the configured level, as text or one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)


def main(argv: list[str] | None = None) -> int:
    """Run the operator until interrupted."""
    parser = argparse.ArgumentParser(
        prog="resumable-operator",
        description="Run ResumableBatch objects to completion across pod failures. "
        f"Settings come from {PREFIX}* environment variables: NAMESPACES (comma-separated; "
        "empty watches all), METRICS_PORT (8080; 0 disables), LOG_LEVEL (INFO), "
        "LOG_FORMAT (text|json), WORKERS (4), LIVENESS (http://0.0.0.0:8081/healthz), "
        "LEADER_ELECTION (false; true for more than one replica: only the holder of a "
        "coordination.k8s.io Lease reconciles), LEASE_NAME (resumable-batch), "
        "LEASE_NAMESPACE (the pod's), LEASE_SECONDS (15), KUEUE (false; true admits batches "
        "labelled kueue.x-k8s.io/queue-name through Kueue Workloads).",
    )
    parser.parse_args(argv)
    try:
        config = OperatorConfig.from_env()
    except SettingsError as exc:
        print(f"resumable-operator: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    try:
        import kopf

        from resumable_operator import handlers  # noqa: F401  (registers the handlers)
    except ModuleNotFoundError as exc:
        print(
            f"resumable-operator: needs {exc.name}: pip install 'resumable-batch[operator]'",
            file=sys.stderr,
        )
        return 2

    kopf.configure(verbose=config.log_level == "DEBUG")
    configure_logging(config)
    kopf.run(
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        # No kopf peering: every replica watches, and a Lease decides which one acts
        # (leader.py); kopf's handlers here keep no state of their own in the objects.
        standalone=True,
        liveness_endpoint=config.liveness or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
