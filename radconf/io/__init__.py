"""Generic file I/O with no knowledge of any method: atomic writes and staged folders (``files``), image headers and
the one geometry policy (``images``), case names (``cases``), dataset.json (``dataset_json``), tables (``tables``).
"""
