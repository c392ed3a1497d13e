"""
Find the files to import: walk folders and read ZIP and tar archives member by
member, and tell DICOM files from the rest by their first bytes.
"""

from __future__ import annotations

import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO

# Bytes read from the start of each file to decide whether it is DICOM: the
# 128-byte preamble, "DICM" and the start of the File Meta group.
PREFIX_SIZE = 512

MEDIA_STORAGE_DIRECTORY_UID = "1.2.840.10008.1.3.10"
ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tbz",
    ".tar.xz",
    ".txz",
)

# The value representations of PS3.5 Table 6.2-1, for the explicit VR check.
_VALUE_REPRESENTATIONS = frozenset(
    vr.encode("ascii")
    for vr in (  # noqa: SIM905
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS"
        " ST SV TM UC UI UL UN UR US UT UV"
    ).split()
)

# Errors raised while reading a file or an archive member.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    # zipfile raises these for encrypted members and unknown compression.
    RuntimeError,
    NotImplementedError,
)


@dataclass(frozen=True)
class Source:
    """
    One file to import: a file on disk or a member of an archive.

    @ivar name: The name shown in the output, the path for a file and the
        archive path and member name joined by a colon for a member.
    @ivar base_name: The last component of the file's or member's name.
    @ivar size: The size in bytes, uncompressed for an archive member.
    @ivar in_archive: Whether this is an archive member. A member must be
        opened before the iterator that yielded it advances, because tar
        archives are read as a stream.
    @ivar error: Why the file, folder or archive could not be read, or
        L{None}.
    """

    name: str
    base_name: str
    size: int
    in_archive: bool = False
    error: str | None = None
    opener: Callable[[], IO[bytes]] | None = field(
        default=None, repr=False, compare=False
    )

    def open(self) -> IO[bytes]:
        """
        Open the file or member for reading in binary mode.

        @raise OSError: If the source could not be read while walking.
        """
        if self.opener is None:
            raise OSError(self.error or f"{self.name} cannot be opened")
        return self.opener()


def archive_kind(name: str) -> str | None:
    """
    Return C{"zip"} or C{"tar"} when C{name} has an archive suffix, else
    L{None}. The check ignores case.
    """
    lowered = name.lower()
    if lowered.endswith(ZIP_SUFFIXES):
        return "zip"
    if lowered.endswith(TAR_SUFFIXES):
        return "tar"
    return None


def iter_sources(paths: Sequence[str]) -> Iterator[Source]:
    """
    Yield every file under C{paths}, including the members of archives.

    Folders are walked recursively in name order, and symbolic links to
    folders are not followed. Archive members come in archive order. A folder
    or archive that cannot be read yields one L{Source} with C{error} set, so
    the caller can report it as a failure.
    """
    for path in paths:
        if os.path.isdir(path):
            yield from _iter_folder(path)
        else:
            yield from _iter_file(path)


def _iter_folder(path: str) -> Iterator[Source]:
    try:
        with os.scandir(path) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        yield _error_source(path, f"listing the folder failed: {error.strerror}")
        return
    for entry in entries:
        entry_path = os.path.join(path, entry.name)
        try:
            is_folder = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file()
        except OSError as error:
            yield _error_source(entry_path, f"read failed: {error.strerror}")
            continue
        if is_folder:
            yield from _iter_folder(entry_path)
        elif is_file:
            yield from _iter_file(entry_path)


def _iter_file(path: str) -> Iterator[Source]:
    kind = archive_kind(path)
    if kind == "zip":
        yield from _iter_zip(path)
    elif kind == "tar":
        yield from _iter_tar(path)
    else:
        try:
            size = os.stat(path).st_size
        except OSError as error:
            yield _error_source(path, f"read failed: {error.strerror}")
            return
        opener = partial(_open_file, path)
        yield Source(path, os.path.basename(path), size, opener=opener)


def _open_file(path: str) -> IO[bytes]:
    return open(path, "rb")


def _iter_zip(path: str) -> Iterator[Source]:
    try:
        archive = zipfile.ZipFile(path)
    except READ_ERRORS as error:
        yield _error_source(path, f"invalid ZIP archive: {error}")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            yield Source(
                f"{path}:{info.filename}",
                info.filename.rstrip("/").rpartition("/")[2],
                info.file_size,
                in_archive=True,
                opener=partial(archive.open, info),
            )


def _iter_tar(path: str) -> Iterator[Source]:
    try:
        # Stream mode reads each compressed archive once, front to back.
        archive = tarfile.open(path, mode="r|*")  # noqa: SIM115
    except READ_ERRORS as error:
        yield _error_source(path, f"invalid tar archive: {error}")
        return
    with archive:
        try:
            for member in archive:
                if not member.isfile():
                    continue
                yield Source(
                    f"{path}:{member.name}",
                    member.name.rpartition("/")[2],
                    member.size,
                    in_archive=True,
                    opener=partial(_extract_member, archive, member),
                )
        except READ_ERRORS as error:
            yield _error_source(path, f"invalid tar archive: {error}")


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    file = archive.extractfile(member)
    if file is None:
        raise tarfile.TarError(f"{member.name} is not a regular file")
    return file


def _error_source(path: str, error: str) -> Source:
    return Source(path, os.path.basename(path), 0, error=error)


def count_sources(paths: Sequence[str]) -> tuple[int, int]:
    """
    Walk C{paths} as L{iter_sources} does and return the number of files and
    their total size in bytes. Listing the members of a compressed tar archive
    decompresses it once.
    """
    files = 0
    size = 0
    for source in iter_sources(paths):
        files += 1
        size += source.size
    return files, size


def is_dicom_prefix(prefix: bytes) -> bool:
    """
    Tell whether a file starting with C{prefix} looks like DICOM.

    That is the case for a Part 10 file (a 128-byte preamble and C{DICM}) and
    for a bare data set whose first element is in group 0x0008, in little
    endian with an explicit VR or an even implicit length, or in big endian
    with an explicit VR. This is a quick sniff, and the server checks the
    whole file.
    """
    if prefix[128:132] == b"DICM":
        return True
    if len(prefix) < 8:
        return False
    if prefix[0:2] == b"\x08\x00":
        if prefix[4:6] in _VALUE_REPRESENTATIONS:
            return True
        length = int.from_bytes(prefix[4:8], "little")
        return length == 0xFFFFFFFF or length % 2 == 0
    if prefix[0:2] == b"\x00\x08":
        return prefix[4:6] in _VALUE_REPRESENTATIONS
    return False


def media_storage_sop_class(prefix: bytes) -> str | None:
    """
    Return the Media Storage SOP Class UID (0002,0002) of a Part 10 file
    starting with C{prefix}, or L{None} when the prefix does not contain it.
    """
    if prefix[128:132] != b"DICM":
        return None
    start = prefix.find(b"\x02\x00\x02\x00UI", 132)
    if start < 0 or start + 8 > len(prefix):
        return None
    length = int.from_bytes(prefix[start + 6 : start + 8], "little")
    value = prefix[start + 8 : start + 8 + length]
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def skip_reason(source: Source, prefix: bytes) -> str | None:
    """
    Return why C{source}, whose first bytes are C{prefix}, is not uploaded,
    or L{None} when it should be.
    """
    if source.base_name.upper() == "DICOMDIR":
        return "DICOMDIR"
    if source.in_archive and archive_kind(source.base_name) is not None:
        return "archive inside an archive"
    if not is_dicom_prefix(prefix):
        return "not DICOM"
    if media_storage_sop_class(prefix) == MEDIA_STORAGE_DIRECTORY_UID:
        return "DICOMDIR"
    return None
