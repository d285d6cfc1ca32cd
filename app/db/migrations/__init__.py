"""Alembic migrations of pixelgate's database, shipped inside the package (see :mod:`app.db.migrate`)."""
