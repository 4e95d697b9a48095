# Collected by pytest from the repository root: keep modules that run on import out of
# doctest collection.
collect_ignore = ["src/metricseg/__main__.py"]
