"""Channel presets shipped as data (channels.yaml)."""
