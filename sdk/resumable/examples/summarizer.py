"""Example worker: summarise a batch of documents with a deterministic fake LLM.

No network: the "model" sleeps a realistic moment per document, returns the
first sentence as the summary and bills tokens by word count. Faults can be
injected for demos and tests:

    python -m resumable.examples.summarizer --items 50 --crash-after 20

``--crash-after N`` stops the process right after item N is committed and saved
(as an API timeout, or with ``--crash-mode kill`` as a SIGKILL); a restarted
worker resumes at item N+1 and, since it never processes item N again, does not
crash twice. ``--poison N`` makes item N kill the worker every time it is tried.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from typing import Any

import resumable

WORDS = [
    "checkpoint",
    "resume",
    "batch",
    "item",
    "worker",
    "operator",
    "status",
    "cluster",
    "failure",
    "retry",
    "token",
    "cost",
    "document",
    "summary",
    "agent",
    "pipeline",
    "research",
    "parse",
    "write",
    "progress",
    "position",
    "attempt",
]

PRICE_PER_TOKEN_USD = 3.0 / 1_000_000


def make_documents(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """A deterministic corpus: the same count and seed give the same documents."""
    rng = random.Random(seed)
    docs = []
    for index in range(count):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
            for _ in range(rng.randint(3, 8))
        ]
        docs.append({"id": f"doc-{index + 1:04d}", "text": " ".join(sentences)})
    return docs


def fake_llm(text: str, *, delay: float) -> tuple[str, int]:
    """Summarise deterministically; returns the summary and the tokens billed."""
    if delay:
        time.sleep(delay)
    first = text.split(". ")[0].rstrip(".") + "."
    tokens = int(len(text.split()) * 1.3) + 400  # prompt overhead plus the document
    return first, tokens


class SimulatedTimeoutError(TimeoutError):
    """The fault injected by --crash-after: the model API timed out."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; each also reads a SUMMARIZER_* environment variable."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--items",
        type=int,
        default=int(env.get("SUMMARIZER_ITEMS", "50")),
        help="number of documents (default 50)",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=float(env.get("SUMMARIZER_DELAY", "0.02")),
        help="seconds the fake model takes per document (default 0.02)",
    )
    parser.add_argument(
        "--crash-after",
        type=int,
        default=int(env["SUMMARIZER_CRASH_AFTER"]) if env.get("SUMMARIZER_CRASH_AFTER") else None,
        help="stop right after item N is committed and saved",
    )
    parser.add_argument(
        "--crash-mode",
        choices=["timeout", "kill", "exit"],
        default=env.get("SUMMARIZER_CRASH_MODE", "timeout"),
        help="how to stop: an uncaught API timeout, SIGKILL, or exiting with --exit-code "
        "(default timeout)",
    )
    parser.add_argument(
        "--exit-code",
        type=int,
        default=int(env.get("SUMMARIZER_EXIT_CODE", "3")),
        help="exit code for --crash-mode exit (default 3)",
    )
    parser.add_argument(
        "--poison",
        type=int,
        default=int(env["SUMMARIZER_POISON"]) if env.get("SUMMARIZER_POISON") else None,
        help="item number that kills the worker every time",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the worker; exit 0 when every document is summarised."""
    args = parse_args(argv)
    docs = make_documents(args.items)
    run = resumable.start()
    say = (lambda *_, **__: None) if args.quiet else print
    if run.settings.slot is not None:
        say(
            f"worker {run.settings.slot}, attempt {run.attempt}: claiming chunks of the "
            f"{len(docs)} items with {run.settings.parallelism} workers",
            flush=True,
        )
    elif run.resumed_from >= len(docs) > 0:
        say(f"attempt {run.attempt}: all {len(docs)} items already saved; finishing", flush=True)
    elif run.resumed_from:
        say(
            f"attempt {run.attempt}: resuming at item {run.resumed_from + 1}/{len(docs)}",
            flush=True,
        )
    else:
        say(f"attempt {run.attempt}: starting at item 1/{len(docs)}", flush=True)
    for item in run.items(docs):
        with item:
            if args.poison is not None and item.number == args.poison:
                say(f"item {item.number}: poison document, the worker dies", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            summary, tokens = fake_llm(item.value["text"], delay=args.delay)
            item.output = {"id": item.value["id"], "summary": summary, "tokens": tokens}
            item.add_usage(tokens=tokens, cost_usd=tokens * PRICE_PER_TOKEN_USD)
            run.context["lastDocument"] = item.value["id"]
        if not args.quiet and item.number % 10 == 0:
            say(f"item {item.number}/{len(docs)} done", flush=True)
        if args.crash_after is not None and item.number == args.crash_after:
            run.checkpoint()
            say(f"item {item.number} committed; injecting a crash ({args.crash_mode})", flush=True)
            if args.crash_mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if args.crash_mode == "exit":
                return int(args.exit_code)
            raise SimulatedTimeoutError(f"model API timed out after item {item.number}")
    totals = run.summary()
    print(
        f"done: {totals.done}/{len(docs)} items, {totals.skipped} skipped, "
        f"{totals.tokens} tokens, ${totals.cost_usd:.4f}, attempt {totals.attempt}",
        flush=True,
    )
    return 0 if totals.finished else 1


if __name__ == "__main__":
    sys.exit(main())
