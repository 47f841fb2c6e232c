"""Small helpers shared by the ground-truth benchmark's tests."""

FREE_ALL = ("type", "hue", "x", "y", "size")   # every factor of "a shape" is free
