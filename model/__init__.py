"""Training, the ``.bnn`` artifact and the golden model.

Only the training modules import torch; the artifact, conventions, data sets and golden model
are numpy-only, so :mod:`bnnflow.hw`, :mod:`bnnflow.sim` and :mod:`bnnflow.boards` can use them.
"""
