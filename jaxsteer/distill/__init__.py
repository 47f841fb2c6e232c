"""Few-step students of a synthetic world's model, by distribution matching, and their collapse.

The collapsed generator of the diversity experiment (DESIGN.md section 4): `dmd` (the objective
and its compiled step: world-free, it sees only the teacher's definition), `run` (`jaxsteer
distill-shapes`: train, checkpoint, export a pipeline folder) and `collapse` (the probe's
read-out of a student's spread and fidelity against its teacher).
"""
