"""vigil.serve: an HTTP server (FastAPI on uvicorn) over the runtime's dynamic batcher.

Needs the `serve` extra (fastapi, uvicorn, prometheus-client); never imports torch.
"""

from .app import Lifecycle, create_app, drain
from .errors import ApiError, error_status
from .metrics import Metrics
from .server import Server, run
from .settings import ServeSettings

__all__ = ["create_app", "drain", "Lifecycle", "ServeSettings", "Server", "run", "Metrics", "ApiError", "error_status"]
