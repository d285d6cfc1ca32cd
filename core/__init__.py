"""The vocabulary every layer shares: the error hierarchy, image types, a provider's settings model.

The bottom layer: ``app`` above ``normalization`` above ``providers`` above ``core``. Modules here
import nothing of pixelgate's other packages (an import-linter contract in ``pyproject.toml``).
"""
