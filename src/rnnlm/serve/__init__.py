"""``rnnlm serve``: a local web page, and the JSON API under it, to see what a model thinks.

:class:`~rnnlm.serve.service.ModelService` does the work without HTTP (score every token, generate,
fill a blank, describe the model); :func:`~rnnlm.serve.app.create_app` wraps it in a Starlette ASGI app
with the page (``static/``: plain HTML, JS and CSS, no build step). Needs the ``serve`` extra
(``pip install 'rnnlm[serve]'``: Starlette and uvicorn). Importing this package does not import them;
:func:`create_app` and :func:`serve` do.
"""

from __future__ import annotations

from rnnlm.serve.params import ApiError, Limits
from rnnlm.serve.service import ModelService


def create_app(service: ModelService, allowed_hosts=None):
    """The ASGI app for ``service`` (see :mod:`rnnlm.serve.app`)."""
    from rnnlm.serve.app import create_app as create

    return create(service, allowed_hosts=allowed_hosts)


__all__ = ["ApiError", "Limits", "ModelService", "create_app"]
