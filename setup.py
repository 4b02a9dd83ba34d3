"""Builds the optional C speedup of the backup (everything else is in pyproject.toml).

``hostbackup/backup/_smallfiles.c`` packs small files into the tar stream; it needs a C compiler,
the Python headers and OpenSSL's (Debian: gcc, python3-dev, libssl-dev). ``optional=True``: when it
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
        )
    ]
)
