"""Where the openai provider kind connects when its settings name no URL."""

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
