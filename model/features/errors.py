"""The one exception type for problems a user can cause with their input."""


class FeatureError(ValueError):
    """Bad or unusable input; the message says what is wrong and what to do."""
