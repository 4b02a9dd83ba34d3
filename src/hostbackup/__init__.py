"""hostbackup — a backup manager for web-hosting accounts that speaks the Plesk XML API.

The public surface is small: the settings object, the application factory and the
version. Everything else is reached through the `hostbackup` command line.
"""

from hostbackup.config import Settings

__version__ = "0.1.0"
__all__ = ["Settings", "__version__"]
