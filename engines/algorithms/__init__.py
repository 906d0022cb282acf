"""The algorithm contract (base classes, per-algorithm config) and the registry that names them."""
