"""The one version string: `mlgen --version`, `config.json`'s `mlgen_version` and the package metadata."""

__version__ = "0.3.0"
