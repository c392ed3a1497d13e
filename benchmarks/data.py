"""
The benchmark data sets, built once from pydicom-data files and cached.

SMALL holds distinct CT instances of about 0.5 MB (20 patients x 2 studies x
2 series x 25 instances for the full set), CHURN a second set of the same shape
with other UIDs, and LARGE Enhanced CT instances of about 50 MB whose frames
are copies of the source frames.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

SMALL_SOURCE = "693_UNCI.dcm"
LARGE_SOURCE = "eCT_Supplemental.dcm"
LARGE_FRAMES = 96
# The layout of the full SMALL set; --quick scales the instances per series.
PATIENTS = 20
STUDIES_PER_PATIENT = 2
SERIES_PER_STUDY = 2


@dataclass(frozen=True)
class DataSet:
    """
    A built data set: its files in sending order and their total size.
    """

    name: str
    files: tuple[str, ...]
    total_bytes: int

    @property
    def count(self) -> int:
        """
        The number of instances.
        """
        return len(self.files)

    def sample(self, count: int) -> DataSet:
        """
        The first C{count} files, spread over all patients by a stride.
        """
        stride = max(1, len(self.files) // count)
        chosen = self.files[::stride][:count]
        size = sum(os.path.getsize(path) for path in chosen)
        return DataSet(f"{self.name}-sample", tuple(chosen), size)

    def split(self, parts: int) -> list[tuple[str, ...]]:
        """
        The files dealt round-robin into C{parts} lists.
        """
        return [self.files[index::parts] for index in range(parts)]


def source_directory() -> Path:
    """
    The folder of pydicom-data's test files (the C{data_store} package).

    @raise RuntimeError: if pydicom-data is not installed.
    """
    for module in ("data_store", "pydicom_data"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None:
            folder = Path(spec.origin).parent / "data"
            if (folder / SMALL_SOURCE).exists():
                return folder
    raise RuntimeError("pydicom-data is not installed (no data_store package)")


def _write(dataset: Dataset, path: Path) -> None:
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path, enforce_file_format=True)


def _build_small(
    target: Path, prefix: str, per_series: int, patients: int = PATIENTS
) -> None:
    template = pydicom.dcmread(source_directory() / SMALL_SOURCE)
    target.mkdir(parents=True, exist_ok=True)
    for patient in range(patients):
        template.PatientID = f"{prefix}-P{patient:03d}"
        template.PatientName = f"BENCH^{prefix}{patient:03d}"
        for study in range(STUDIES_PER_PATIENT):
            template.StudyInstanceUID = generate_uid()
            template.AccessionNumber = f"{prefix}{patient:03d}{study}"
            for series in range(SERIES_PER_STUDY):
                template.SeriesInstanceUID = generate_uid()
                template.SeriesNumber = series + 1
                for instance in range(per_series):
                    template.SOPInstanceUID = generate_uid()
                    template.InstanceNumber = instance + 1
                    name = f"{patient:03d}-{study}-{series}-{instance:03d}.dcm"
                    _write(template, target / name)


def _build_large(target: Path, count: int, frame_count: int = LARGE_FRAMES) -> None:
    source = pydicom.dcmread(source_directory() / LARGE_SOURCE)
    frames = int(source.NumberOfFrames)
    frame_size = len(source.PixelData) // frames
    items = list(source.PerFrameFunctionalGroupsSequence)
    per_frame = []
    for index in range(frame_count):
        item = copy.deepcopy(items[index % frames])
        content = item.FrameContentSequence[0]
        if "InStackPositionNumber" in content:
            content.InStackPositionNumber = index + 1
        if "DimensionIndexValues" in content:
            values = list(content.DimensionIndexValues)
            values[-1] = index + 1
            content.DimensionIndexValues = values
        position = item.PlanePositionSequence[0].ImagePositionPatient
        item.PlanePositionSequence[0].ImagePositionPatient = [
            position[0],
            position[1],
            float(index) * 1.25,
        ]
        per_frame.append(item)
    source.PerFrameFunctionalGroupsSequence = per_frame
    source.NumberOfFrames = frame_count
    original = bytes(source.PixelData)
    source.PixelData = b"".join(
        original[(index % frames) * frame_size : (index % frames + 1) * frame_size]
        for index in range(frame_count)
    )
    target.mkdir(parents=True, exist_ok=True)
    source.PatientID = "BENCH-LARGE"
    source.PatientName = "BENCH^LARGE"
    source.StudyInstanceUID = generate_uid()
    source.SeriesInstanceUID = generate_uid()
    for instance in range(count):
        source.SOPInstanceUID = generate_uid()
        source.InstanceNumber = instance + 1
        _write(source, target / f"large-{instance:03d}.dcm")


def _load(folder: Path, name: str) -> DataSet | None:
    marker = folder / "complete.json"
    if not marker.exists():
        return None
    files = tuple(sorted(str(path) for path in folder.glob("*.dcm")))
    if len(files) != json.loads(marker.read_text())["count"]:
        return None
    return DataSet(name, files, sum(os.path.getsize(path) for path in files))


def ensure(root: Path, name: str, per_series: int, large_count: int) -> DataSet:
    """
    Build the data set C{name} under C{root} unless a complete copy is cached.

    @param name: C{small}, C{churn} or C{large}.
    @param per_series: Instances per series of the SMALL-shaped sets.
    @param large_count: The number of LARGE instances.
    """
    if name == "large":
        folder = root / f"large-{large_count}"
    else:
        folder = root / f"{name}-{per_series}"
    cached = _load(folder, name)
    if cached is not None:
        return cached
    for stale in folder.glob("*.dcm"):
        stale.unlink()
    if name == "large":
        _build_large(folder, large_count)
        expected = large_count
    else:
        _build_small(folder, name.upper(), per_series)
        expected = PATIENTS * STUDIES_PER_PATIENT * SERIES_PER_STUDY * per_series
    (folder / "complete.json").write_text(json.dumps({"count": expected}))
    built = _load(folder, name)
    if built is None:
        raise RuntimeError(f"building {folder} did not produce {expected} files")
    return built


def ensure_huge(root: Path, count: int, frame_count: int) -> DataSet:
    """
    Build, unless cached, C{count} instances shaped like LARGE but with
    C{frame_count} frames each (384 frames make about 200 MB).
    """
    folder = root / f"huge-{count}-{frame_count}"
    cached = _load(folder, "huge")
    if cached is not None:
        return cached
    for stale in folder.glob("*.dcm"):
        stale.unlink()
    _build_large(folder, count, frame_count)
    (folder / "complete.json").write_text(json.dumps({"count": count}))
    built = _load(folder, "huge")
    if built is None:
        raise RuntimeError(f"building {folder} left an incomplete set")
    return built
