"""The foundation every other package stands on: the error type users see, atomic file writing, result tables."""
