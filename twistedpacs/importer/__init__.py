"""
Import DICOM files into TwistedPACS, or any server with Orthanc's REST API.

C{twistedpacs-import [--url URL] [--username U --password P] [--jobs N] PATH...}
walks folders, ZIP archives and tar archives (plain, gzip, bzip2 or xz), and
sends every DICOM file it finds to C{POST /instances} as the raw body of one
request. It also accepts the arguments of Orthanc's sample script
C{ImportDicomFiles.py}: C{HOST PORT PATH [USERNAME PASSWORD]}.

Archives are read member by member and never unpacked to disk. Uploads run in
several threads, each over its own keep-alive connection.
"""

from twistedpacs.importer.cli import main, run
from twistedpacs.importer.client import upload
from twistedpacs.importer.sources import Source, is_dicom_prefix, iter_sources

__all__ = ["Source", "is_dicom_prefix", "iter_sources", "main", "run", "upload"]
