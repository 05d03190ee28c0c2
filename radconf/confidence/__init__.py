"""Multi-reader confidence levels: fusion of readers' masks into ordinal levels (``fusion``, ``case``), checks of
the reader inputs (``checks``), the fused dataset and its agreement report (``dataset``, ``report``), the ordinal
encoding (``ordinal``) and the level outputs of a confidence model (``outputs``).
"""
