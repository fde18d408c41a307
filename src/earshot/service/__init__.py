"""The monitoring service (``earshot serve``): REST API, web page, store, alerts, labels.

An edge of the package: nothing else imports it. It needs the ``serve`` extra (FastAPI,
uvicorn, SQLAlchemy, python-multipart); scoring goes through the bundles' ONNX graphs, so
torch is imported only when a machine's model is trained (``POST /machines/{m}/train``).
"""


def create_app(*args, **kwargs):
    """See :func:`earshot.service.app.create_app` (imported on use)."""
    # deferred: the FastAPI/SQLAlchemy stack loads only when an app is built, not with the package
    from earshot.service.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
