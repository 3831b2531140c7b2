"""PMG over HTTP: a FastAPI app (``create_app``) whose one worker owns the models and batches requests."""

from pmg.service.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]
