"""The HTTP layer: one router per resource (``jobs``, ``health``), dependencies, errors, limits."""
