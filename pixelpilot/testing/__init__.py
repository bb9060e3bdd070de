"""Browser tests that read like instructions: the ``pilot`` pytest fixture and its report."""
