"""The report's pages, one module per kind of content (`jaxsteer.report` assembles them).

- `html`: escaping, rounding, inlined images, tables, the page shell;
- `svg`: inline charts (spectrum, thumbnails, histogram);
- `directions`: what each steering direction does, with the strength scrubber;
- `survey`: a survey folder, prompts ranked by complexity;
- `diversity`: samples without and with random steering, with their metrics.
"""
