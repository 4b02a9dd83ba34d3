def pack_small_file(
    dir_fd: int,
    name: bytes,
    member: bytes,
    stage: bytearray,
    checksum_lines: bytearray,
    unames: dict[int, bytes],
    gnames: dict[int, bytes],
    /,
) -> tuple[int, int] | None: ...
