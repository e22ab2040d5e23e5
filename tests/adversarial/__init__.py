"""The standing adversarial suite (issue #19), to come; for now ``bombs.py``: the
hostile request bodies the regression tests of issue #19 share."""
