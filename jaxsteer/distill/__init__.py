"""Few-step students of a synthetic world's model, by distribution matching, and their collapse.

The collapsed generator of the diversity experiment (DESIGN.md section 4), for the shapes world
(pixel space) or the scenes world (latent space): `dmd` (the objective and its compiled step:
world-free, it sees only the teacher's definition), `worlds` (what a world gives a run: its
bundled teacher and caption stream, and which world a teacher folder draws), `run` (`jaxsteer
distill-shapes`: train, checkpoint, export a pipeline folder) and `collapse` (the world's
probe's read-out of a student's spread and fidelity against its teacher).
"""
