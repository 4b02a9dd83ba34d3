"""One module per operator; importing this package registers every operation handler."""

from hostbackup.xmlapi.operators import (
    backup_manager,
    customer,
    database,
    db_server,
    mail,
    remote_storage,
    reseller,
    secret_key,
    server,
    webspace,
    x_backup_manager,
)

__all__ = ["backup_manager", "server", "x_backup_manager"]
__all__ += ["customer", "mail", "reseller", "secret_key", "webspace"]
__all__ += ["database", "db_server"]
__all__ += ["remote_storage"]
