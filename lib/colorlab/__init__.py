"""colorlab: an open reproduction study of automatic image colorization.

Importing the package does nothing beyond defining names: no seeding, no
downloads, no global flags. See README.md for the two commands.
"""

__version__ = "0.1.0"
