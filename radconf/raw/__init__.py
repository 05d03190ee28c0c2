"""nnU-Net raw datasets: finding and checking them (``checks``), radconf's dataset.json entry (``entry``), and the
helpers of datasets radconf derives from them (``derived``).
"""
