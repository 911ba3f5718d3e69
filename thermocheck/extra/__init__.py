"""Optional integrations with other libraries, one module per library (imported only on demand):
:mod:`thermocheck.extra.lightning` (PyTorch Lightning, ``pip install 'thermocheck[lightning]'``)."""
