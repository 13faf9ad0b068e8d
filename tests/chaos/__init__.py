"""Property-based chaos tests against the live reference shop (DESIGN part 7)."""
