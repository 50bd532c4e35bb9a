"""The orchestration API: a Falcon WSGI app (``app.py``) over a SQL store (``storage/``)."""
