"""Operating pixelgate: the admin API (``/admin/*``) and the ``pixelgate`` operations commands."""

from app.admin.guard import AdminGuard
from app.admin.routes import admin_router

__all__ = ["AdminGuard", "admin_router"]
