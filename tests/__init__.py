"""erl-losses test suite."""
