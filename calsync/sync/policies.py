"""Names of the conflict policies (kept apart so config checks need no merge code)."""

POLICIES = ("merge", "newest", "a-wins", "b-wins", "keep-both")
FALLBACKS = ("newest", "a-wins", "b-wins")
