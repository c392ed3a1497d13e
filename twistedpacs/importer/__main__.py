"""
Run the import tool as C{python -m twistedpacs.importer}.
"""

from twistedpacs.importer.cli import main

main()
