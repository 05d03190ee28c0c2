"""The end-to-end demo on the embedded synthetic phantom."""
