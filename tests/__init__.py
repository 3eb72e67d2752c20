"""venvsmith tests; ``tests.fixtures`` holds the hermetic index toolkit."""
