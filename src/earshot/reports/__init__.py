"""HTML and JSON pages: the evaluation report (:mod:`.evaluation`), the cross-validation and
comparison pages (:mod:`.crossval`), their shared per-domain tables (:mod:`.domain_tables`) and
the data exploration page (:mod:`.explore`).

Pages are written whole or not at all; figures come from :mod:`earshot.plots`.
"""
