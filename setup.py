"""Builds the optional C speedups of backup and restore (everything else is in pyproject.toml).

``hostbackup/backup/_smallfiles.c`` packs small files into the tar stream; it needs a C compiler,
the Python headers and OpenSSL's (Debian: gcc, python3-dev, libssl-dev).
``hostbackup/restore/_tarheader.c`` parses the restore's tar headers. ``optional=True``: when one
cannot be built, the install still succeeds and the pure-Python path does the same work, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hostbackup.backup._smallfiles",
            sources=["src/hostbackup/backup/_smallfiles.c"],
            libraries=["crypto"],
            optional=True,
        ),
        Extension("hostbackup.restore._tarheader", sources=["src/hostbackup/restore/_tarheader.c"], optional=True),
    ]
)
