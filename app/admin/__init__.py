"""Operating pixelgate: the admin API (:mod:`app.admin.routes`) and the operations commands (:mod:`app.admin.cli`).

Nothing is imported here, so the commands start without loading the web stack.
"""
