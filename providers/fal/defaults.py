"""Where the fal provider kind connects when its settings name no URL."""

DEFAULT_FAL_BASE_URL = "https://queue.fal.run"
DEFAULT_FAL_STORAGE_URL = "https://rest.fal.ai"
