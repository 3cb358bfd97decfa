"""The tutorial's own training loop (part 2), kept literal: ``train_with_sgd``.

It is the blog's code on purpose -- one sentence per SGD step, the loss computed every
``evaluate_loss_after`` epochs and the learning rate halved when it rose -- so that a reader can set it
beside the tutorial line by line. It works with the NumPy reference and the graph ``RNN`` alike (both have
``sgd_step`` and ``calculate_loss``). Real training uses :class:`rnnlm.training.trainer.Trainer`.
"""

from __future__ import annotations

import numpy as np


def train_with_sgd(
    model, X_train, y_train, learning_rate=0.005, nepoch=1, evaluate_loss_after=5, callback=None
):
    """SGD one sentence at a time; every ``evaluate_loss_after`` epochs compute the loss and
    halve the learning rate if it rose.  Works with :class:`~rnnlm.models.tutorial.RNN` and
    :class:`~rnnlm.models.reference.RNNNumpy`.  Returns ``[(examples_seen, loss), ...]``.
    """
    losses = []
    seen = 0
    lr = float(learning_rate)
    for epoch in range(nepoch):
        if epoch % evaluate_loss_after == 0:
            loss = model.calculate_loss(X_train, y_train)
            losses.append((seen, loss))
            if len(losses) > 1 and losses[-1][1] > losses[-2][1]:
                lr *= 0.5
            if callback is not None:
                callback(epoch=epoch, examples_seen=seen, loss=loss, learning_rate=lr)
        for x, y in zip(X_train, y_train, strict=True):
            model.sgd_step(np.asarray(x, "int32"), np.asarray(y, "int32"), np.float32(lr))
            seen += 1
    return losses
