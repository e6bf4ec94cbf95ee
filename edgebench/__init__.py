"""edgebench: which compressed variant of a vision model, on which runtime, is best for a device."""
__version__ = "0.1.0"


def load_run(path):
    """Measurements of a run folder (or report.json) as a pandas DataFrame, one row per measurement."""
    from edgebench.report.loader import load_run as _load_run

    return _load_run(path)
