"""DICOM-RT exchange: CT series and RT structure sets in (radconf_import_dicom), RTSTRUCT / DICOM-SEG / Slicer
``.seg.nrrd`` out (radconf_export_dicom, radconf_predict --output_format).

Every module uses :mod:`radconf.dicom.geometry` for coordinates; see documentation/dicom_rt.md.
"""
