"""
Benchmarks of TwistedPACS against Orthanc, DCMTK storescp and pynetdicom.

Run C{python benchmarks/run.py --help}. Nothing here is part of the package or
of the test suite.
"""
