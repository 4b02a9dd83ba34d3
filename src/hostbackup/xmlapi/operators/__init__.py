"""One module per operator; importing this package registers every operation handler."""

from hostbackup.xmlapi.operators import backup_manager, server, x_backup_manager

__all__ = ["backup_manager", "server", "x_backup_manager"]
