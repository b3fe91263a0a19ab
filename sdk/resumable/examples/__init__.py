"""Example workers shipped with the SDK (run in pods as ``python -m resumable.examples.X``)."""
