"""Support code the tests share: the repository's commands run as a user runs them, servers, training runs and
evaluation stages started for real, and the corpora fed to them. Fixtures stay in `tests/conftest.py`."""
