"""resumable_cli: the ``resumable`` (and ``kubectl resumable``) command line.

One module per command or group of commands, imported only when that command
runs (:mod:`resumable_cli.app` holds the parser and :func:`main`):

- ``run`` (``resumable run FILE.yaml``) and ``demo``: a batch on this machine,
  through :mod:`resumable_runner`;
- ``get``, ``describe``, ``logs``, ``status``: read a batch, in a cluster through
  :mod:`resumable_cli.kube` (``logs`` and ``status`` also a local run's state);
- ``control``: ``suspend``, ``resume``, ``rerun``, which change a batch's spec;
- ``output``: the progress bar and tables the commands print with; ``errors``: the
  one-line error every command may end with.

None of it needs kopf; the cluster commands need the kubernetes client.
"""

from resumable_cli.app import main

__all__ = ["main"]
